# The ingestion service as a container image: `docker build -t ingestion-service .`
# Two stages: the SDK restores and publishes, and only the published app is copied onto the
# ASP.NET runtime image, so the final image carries no SDK, no sources and no NuGet cache.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src

# NuGet checks the revocation of package signing certificates online. On a closed network that
# does not reach the certificate authorities' servers each check waits for its time-out (the
# restore then takes ~20 s instead of ~3 s); such a build passes
# `--build-arg NUGET_CERT_REVOCATION_MODE=offline`.
ARG NUGET_CERT_REVOCATION_MODE=online

# Restore from the files that name packages alone, so that a change to the code reuses this layer.
# Package versions are pinned centrally in Directory.Packages.props: the same checkout restores
# the same packages.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/IngestionService/IngestionService.csproj src/IngestionService/
RUN dotnet restore --disable-build-servers src/IngestionService/IngestionService.csproj

COPY src/ src/
# ContinuousIntegrationBuild: deterministic paths in the assemblies, whatever the build folder.
# No apphost: the runtime image starts it with `dotnet`, so a native launcher would be dead weight.
# No build servers: a one-off build gains nothing from a compiler server that idles for minutes
# afterwards, and builders without a PID namespace per step (buildah's chroot isolation) would
# leave it running.
RUN dotnet publish src/IngestionService/IngestionService.csproj --no-restore --disable-build-servers \
        -c Release -o /app -p:UseAppHost=false -p:ContinuousIntegrationBuild=true


FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime

# The SQLite file lives on a volume at /data. A new named volume takes the owner of the image's
# folder, so the folder must belong to the non-root user the service runs as (the image's `app`,
# APP_UID 1654).
RUN mkdir -p /data && chown "$APP_UID:$APP_UID" /data
VOLUME /data

# PORT is what PaaS hosts set; the service listens on it on every interface (see
# Hosting/HostingExtensions.cs, UseDefaultUrls). Without a PORT it would listen on localhost only,
# which no one outside the container reaches, so the image sets 8000. ASPNETCORE_URLS or --urls,
# when given, win over PORT. ASPNETCORE_HTTP_PORTS (8080 in the base image) is cleared so that
# Kestrel does not warn that PORT overrides it.
ENV PORT=8000 \
    ASPNETCORE_HTTP_PORTS= \
    Storage__ConnectionString="Data Source=/data/ingestion.db"
EXPOSE 8000

WORKDIR /app
COPY --from=build /app ./

USER $APP_UID

# The image has no curl or wget: bash's /dev/tcp asks /health/live on the port the service listens
# on and passes on a 200 status line. (/health/live, not /health/ready: a database outage should
# not make an orchestrator restart instances that cannot fix it.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD bash -c 'exec 3<>"/dev/tcp/127.0.0.1/${PORT:-8000}" && printf "GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" >&3 && read -r -t 5 _ code _ <&3 && [ "$code" = 200 ]'

# Exec form: dotnet is PID 1 and receives SIGTERM itself, so `docker stop` lets the window in
# flight finish (Ingestion:ShutdownTimeout, 10 s by default) before the service exits.
ENTRYPOINT ["dotnet", "IngestionService.dll"]
