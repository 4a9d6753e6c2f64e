#!/usr/bin/env bash
# Builds the repository's Dockerfile and runs the image, on a machine with no Docker engine and no
# container registry: the check that the image builds, starts, serves and stores where it should.
#
#   sudo deploy/verify.sh        (root: buildah's storage and debootstrap need it)
#
# 1. Makes local stand-ins for the base images, under the exact names the Dockerfile uses: a
#    Debian root file system (debootstrap, cached) plus this machine's .NET SDK, resp. only the .NET
#    and ASP.NET Core runtimes, with the `app` user and the environment of the official images.
# 2. Builds the Dockerfile with `buildah bud --isolation chroot` (no daemon, no registry).
# 3. Runs the image's entrypoint as the image says (user, environment, working folder), with /data
#    on a folder of its own and PORT set to a free port, and checks it over HTTP on loopback.
# Each check prints one PASS or FAIL line; the exit status is non-zero if any failed. Containers,
# the built image and temporary files are removed on exit; the root file system and the stand-ins
# are kept as a cache (XDG_CACHE_HOME or /var/cache, and buildah's image store).
#
# Needs: buildah, debootstrap, curl, python3 (to read JSON), and the .NET SDK on PATH
# (`apt-get install buildah debootstrap curl python3`; .ci/run installs them).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- reporting --------------------------------------------------------------------------------
failures=0
pass() { printf 'PASS  %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; failures=$((failures + 1)); }
info() { printf '....  %s\n' "$1"; }
die()  { printf 'FAIL  %s\n' "$1"; printf 'verify: stopped at the first step that cannot go on\n' >&2; exit 1; }
# check NAME COMMAND...: runs the command, and reports NAME as passed or failed by its status.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

# --- prerequisites ----------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "verify.sh must run as root (buildah's image store and debootstrap need it)"
for tool in buildah debootstrap curl python3 dotnet; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (apt-get install buildah debootstrap curl python3)"
done

# The base images the Dockerfile names: an SDK and an ASP.NET runtime are all this script can stand in for.
mapfile -t bases < <(awk 'toupper($1) == "FROM" { print $2 }' "$repo/Dockerfile")
sdk_image="" aspnet_image=""
for base in "${bases[@]}"; do
  case "$base" in
    mcr.microsoft.com/dotnet/sdk:*)    sdk_image=$base ;;
    mcr.microsoft.com/dotnet/aspnet:*) aspnet_image=$base ;;
    *) die "the Dockerfile uses $base, for which this script has no stand-in" ;;
  esac
done
[ -n "$sdk_image" ] && [ -n "$aspnet_image" ] || die "the Dockerfile must build FROM a dotnet/sdk and run FROM a dotnet/aspnet image"

# The stand-ins carry this machine's .NET: it must be the version the image tags name.
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
sdk_version=$(dotnet --version)
runtime_version=$(dotnet --list-runtimes | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')
aspnet_version=$(dotnet --list-runtimes | awk '$1 == "Microsoft.AspNetCore.App" { v = $2 } END { print v }')
tag=${sdk_image##*:}
case "$sdk_version" in
  "$tag".*) ;;
  *) die "this machine's SDK is $sdk_version, but the Dockerfile builds with $sdk_image" ;;
esac
[ -n "$runtime_version" ] && [ -n "$aspnet_version" ] || die "no .NET and ASP.NET Core runtimes next to $dotnet_root/dotnet"

# --- workspace and clean-up -------------------------------------------------------------------
cache_dir=${XDG_CACHE_HOME:-/var/cache}/ingestion-verify
mkdir -p "$cache_dir"
# One run at a time: two would replace each other's stand-ins under the same names. The lock's
# descriptor (9) is inherited by what this script starts, which also tells which processes are ours.
lock="$cache_dir/lock"
exec 9>"$lock"
if ! flock -n 9; then
  info "waiting for the process that holds $lock (another verify.sh, or what it left running)"
  flock -w 1800 9 || die "$lock is still held after 30 minutes"
fi

# lock_holders: sets holders to the processes other than this shell that hold the lock's descriptor,
# i.e. were started by this script (or by what it started) and still run. No subshell here: it
# would hold the descriptor too.
lock_holders() {
  holders=()
  local fd pid
  for fd in /proc/[0-9]*/fd/*; do
    [ "$fd" -ef "$lock" ] || continue
    pid=${fd#/proc/}; pid=${pid%%/*}
    [ "$pid" = "$$" ] || [[ " ${holders[*]} " == *" $pid "* ]] || holders+=("$pid")
  done
}

tmp=$(mktemp -d /tmp/ingestion-verify.XXXXXX)
image="localhost/ingestion-service:verify-$$"
containers=()   # working containers to remove
pids=()         # background `buildah run` processes to stop

descendants() { local child; for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$child"; descendants "$child"; done; }

cleanup() {
  local status=$? pid
  for pid in "${pids[@]}"; do
    # The service and anything it started, then the buildah process that runs it (only our own pids).
    for child in $(descendants "$pid"); do kill -KILL "$child" 2>/dev/null || true; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  lock_holders   # anything else this run started that still runs
  for pid in "${holders[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for ctr in "${containers[@]}"; do buildah rm "$ctr" >/dev/null 2>&1 || true; done
  buildah rmi "$image" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the Debian root file system, cached ---------------------------------------------------
# What .NET needs on Linux, as the official images install it (libicu for the SDK; the service
# itself runs with InvariantGlobalization), on Debian 12 like this machine; minbase keeps it small.
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=ca-certificates,libc6,libgcc-s1,libicu72,libssl3,libstdc++6,tzdata,zlib1g
rootfs_key=$(printf '%s\n' "$suite" "$packages" "slim-1" | sha256sum | cut -c1-12)
rootfs_tar="$cache_dir/rootfs-$suite-$rootfs_key.tar"

start=$SECONDS
if [ -f "$rootfs_tar" ]; then
  info "Debian $suite root file system from the cache ($rootfs_tar)"
else
  info "debootstrap Debian $suite (minbase + $packages) from $mirror"
  root="$tmp/rootfs"
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log"; die "debootstrap failed"; }
  # As debian:bookworm-slim: no package cache, lists, docs or translations. resolv.conf and the
  # host name are the container engine's to provide, not the image's.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
         "$root"/etc/resolv.conf "$root"/etc/hostname
  tar -C "$root" --numeric-owner -cf "$rootfs_tar.partial" .
  mv "$rootfs_tar.partial" "$rootfs_tar"   # only a complete file counts as cached
  rm -rf "$root"
  info "Debian $suite root file system made in $((SECONDS - start)) s"
fi

# --- the stand-in base images -----------------------------------------------------------------
# A stand-in is remade when its ingredients change: the root file system, this machine's .NET, or
# the recipe (the text of make_standin). An image under the same name that this script did not
# make is left alone.
standin_label=io.ingestion-service.verify.stand-in
image_label() { buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$standin_label\"}}" "$1" 2>/dev/null; }

make_standin() {
  local name=$1 kind=$2 key ctr mnt old
  key=$( { printf '%s\n' "$kind" "$rootfs_key" "$sdk_version" "$runtime_version" "$aspnet_version"; declare -f make_standin; } | sha256sum | cut -c1-16)
  if buildah inspect --type image "$name" >/dev/null 2>&1; then
    old=$(image_label "$name")
    [ -n "$old" ] || die "an image named $name exists that verify.sh did not make; remove it (buildah rmi $name) or run elsewhere"
    if [ "$old" = "$key" ]; then info "stand-in $name from the cache"; return; fi
  fi
  local t0=$SECONDS
  ctr=$(buildah from scratch); containers+=("$ctr")
  mnt=$(buildah mount "$ctr")
  tar -C "$mnt" -xf "$rootfs_tar"
  mkdir -p "$mnt/usr/share/dotnet"
  if [ "$kind" = sdk ]; then
    cp -a "$dotnet_root/." "$mnt/usr/share/dotnet/"
  else
    # The runtime image: the dotnet host and the two shared frameworks, nothing of the SDK.
    mkdir -p "$mnt/usr/share/dotnet/shared"
    cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$mnt/usr/share/dotnet/"
    cp -a "$dotnet_root/shared/Microsoft.NETCore.App" "$dotnet_root/shared/Microsoft.AspNetCore.App" "$mnt/usr/share/dotnet/shared/"
  fi
  ln -s /usr/share/dotnet/dotnet "$mnt/usr/bin/dotnet"
  # The official images' non-root user: app, UID and GID 1654, with a home.
  chroot "$mnt" groupadd --gid 1654 app
  chroot "$mnt" useradd --no-log-init --uid 1654 --gid 1654 --create-home app
  buildah unmount "$ctr" >/dev/null

  # The official images' environment (see their Dockerfiles); the Dockerfile relies on APP_UID and
  # ASPNETCORE_HTTP_PORTS.
  local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
             APP_UID=1654 ASPNETCORE_HTTP_PORTS=8080 DOTNET_RUNNING_IN_CONTAINER=true
             DOTNET_VERSION="$runtime_version" ASPNET_VERSION="$aspnet_version")
  if [ "$kind" = sdk ]; then
    env+=(DOTNET_SDK_VERSION="$sdk_version" DOTNET_GENERATE_ASPNET_CERTIFICATE=false DOTNET_NOLOGO=true
          DOTNET_USE_POLLING_FILE_WATCHER=true NUGET_XMLDOC_MODE=skip)
  fi
  local config=(--label "$standin_label=$key")
  for e in "${env[@]}"; do config+=(--env "$e"); done
  buildah config "${config[@]}" "$ctr"
  local previous; previous=$(buildah inspect --type image --format '{{.FromImageID}}' "$name" 2>/dev/null || true)
  buildah commit --quiet --rm "$ctr" "$name" >/dev/null
  containers=("${containers[@]/$ctr}")
  [ -z "$previous" ] || buildah rmi "$previous" >/dev/null 2>&1 || true   # the outdated stand-in
  info "stand-in $name made in $((SECONDS - t0)) s ($kind, from this machine's .NET $sdk_version / runtime $runtime_version)"
}
make_standin "$sdk_image" sdk
make_standin "$aspnet_image" aspnet

# --- 2. build the Dockerfile ------------------------------------------------------------------
build_args=()
# This machine's network intercepts TLS with a CA of its own, which it adds to its trust store; the
# build's `dotnet restore` reaches nuget.org only if it trusts the same CAs. The host's bundle is
# mounted over the stand-in's for the build's RUN steps only; it does not enter the image.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  build_args+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
# NuGet's online revocation check of package signatures needs the CAs' servers, which a closed
# network does not reach: where the machine says so (NUGET_CERT_REVOCATION_MODE=offline), the
# build is told the same through the Dockerfile's build argument.
if [ -n "${NUGET_CERT_REVOCATION_MODE:-}" ]; then
  build_args+=(--build-arg "NUGET_CERT_REVOCATION_MODE=$NUGET_CERT_REVOCATION_MODE")
fi

start=$SECONDS
info "buildah bud --isolation chroot -t $image (log: build.log in $tmp)"
# --format docker: the OCI image format has no HEALTHCHECK; Docker's keeps it.
if buildah bud --isolation chroot --pull=never --format docker "${build_args[@]}" \
     -f "$repo/Dockerfile" -t "$image" "$repo" >"$tmp/build.log" 2>&1; then
  pass "Dockerfile built in $((SECONDS - start)) s"
else
  tail -40 "$tmp/build.log"
  die "the Dockerfile does not build"
fi
# A Docker engine ends every process of a RUN step with the step; buildah's chroot isolation does
# not, so a build server that a step leaves behind (the compiler's VBCSCompiler idles for minutes)
# would go on running here, and in a real build would only be killed. Such a process holds this
# script's lock descriptor.
lock_holders
left=""
for pid in "${holders[@]}"; do left+=" $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100);"; done
check "the build left no process running${left:+ (left:$left)}" test -z "$left"

# --- the image's configuration ----------------------------------------------------------------
inspect() { buildah inspect --type image --format "$1" "$image"; }
user=$(inspect '{{.Docker.Config.User}}')
workdir=$(inspect '{{.Docker.Config.WorkingDir}}')
mapfile -t env < <(inspect '{{range .Docker.Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
mapfile -t entrypoint < <(inspect '{{range .Docker.Config.Entrypoint}}{{println .}}{{end}}' | sed '/^$/d')
mapfile -t cmd < <(inspect '{{range .Docker.Config.Cmd}}{{println .}}{{end}}' | sed '/^$/d')
mapfile -t healthcheck < <(inspect '{{if .Docker.Config.Healthcheck}}{{range .Docker.Config.Healthcheck.Test}}{{println .}}{{end}}{{end}}' | sed '/^$/d')
volumes=$(inspect '{{range $k, $v := .Docker.Config.Volumes}}{{$k}} {{end}}')

check "the image runs as a non-root user (USER '$user')" \
  bash -c '[ -n "$1" ] && [ "$1" != root ] && [ "${1%%:*}" != 0 ]' _ "$user"
check "the image declares /data as a volume (VOLUME: ${volumes:-none})" grep -qw /data <<<"$volumes"
check "the image has a HEALTHCHECK (${healthcheck[0]:-none})" test "${#healthcheck[@]}" -gt 0
[ "${#entrypoint[@]}" -gt 0 ] || [ "${#cmd[@]}" -gt 0 ] || die "the image has neither ENTRYPOINT nor CMD"

size=$(buildah images --format '{{.Size}}' "$image" | head -1)
base_size=$(buildah images --format '{{.Size}}' "$aspnet_image" | head -1)
sdk_size=$(buildah images --format '{{.Size}}' "$sdk_image" | head -1)
info "image size $size (runtime base $base_size, SDK image $sdk_size)"

# new_container: a working container of the image, to look at and to run in; sets ctr.
# `docker run -v` replaces an image's VOLUME with the given mount; `buildah run` would instead mount
# the container's own anonymous volume over it, so the working container forgets its VOLUMEs (the
# image's declaration was checked above).
new_container() {
  ctr=$(buildah from --pull=never "$image"); containers+=("$ctr")
  local volume
  for volume in $volumes; do buildah config --volume "$volume-" "$ctr"; done
}
new_container
mnt=$(buildah mount "$ctr")

# No SDK in the final image: no sdk folder anywhere under dotnet, and `dotnet --list-sdks` lists
# none. The same command lists one in the SDK stand-in, so the check can tell the two apart.
sdk_dirs=$(find "$mnt" -xdev -type d -path '*/dotnet/sdk' 2>/dev/null | sed "s|^$mnt||")
check "no dotnet/sdk folder in the final image${sdk_dirs:+ (found: $sdk_dirs)}" test -z "$sdk_dirs"
sdks=$(buildah run --isolation chroot "$ctr" -- dotnet --list-sdks 2>&1) || fail "dotnet --list-sdks does not run in the final image: $sdks"
check "'dotnet --list-sdks' lists nothing in the final image${sdks:+ (lists: $sdks)}" test -z "$sdks"
sdk_ctr=$(buildah from --pull=never "$sdk_image"); containers+=("$sdk_ctr")
check "'dotnet --list-sdks' lists an SDK in $sdk_image (the check above can fail)" \
  bash -c '[ -n "$(buildah run --isolation chroot "$1" -- dotnet --list-sdks)" ]' _ "$sdk_ctr"

# /data must be the service's to write: a new named volume takes the owner of the image's folder.
case "$user" in
  '')          user_uid=0 ;;   # no USER: root
  *[!0-9]*)    user_uid=$(awk -F: -v u="${user%%:*}" '$1 == u { print $3 }' "$mnt/etc/passwd") ;;
  *)           user_uid=${user%%:*} ;;
esac
data_owner=$(stat -c %u "$mnt/data" 2>/dev/null || echo missing)
check "/data in the image belongs to the image's user (owner $data_owner, user uid ${user_uid:-unknown})" \
  test "$data_owner" = "$user_uid"
[ "$data_owner" != missing ] || die "the image has no /data folder"

# --- 3. run it as the image says --------------------------------------------------------------
# A named volume starts as a copy of the image's folder, owner and mode included; a bind of an
# empty folder with that owner and mode stands in for it.
data_dir="$tmp/data"
mkdir "$data_dir"
chown "$(stat -c %u:%g "$mnt/data")" "$data_dir"
chmod "$(stat -c %a "$mnt/data")" "$data_dir"

# A free port on loopback (nothing answers there), other than the image's default, so that a
# service which ignored PORT would not be found there.
port=18000
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
base="http://127.0.0.1:$port"

run_args=(--isolation chroot --volume "$data_dir:/data")
[ -z "$user" ] || run_args+=(--user "$user")
[ -z "$workdir" ] || run_args+=(--workingdir "$workdir")
for e in "${env[@]}"; do run_args+=(--env "$e"); done
run_args+=(--env "PORT=$port")   # as `docker run -e PORT=...` or a PaaS host would

# start_service LOG: the entrypoint in the working container, in the background; sets service_pid.
start_service() {
  buildah run "${run_args[@]}" "$ctr" -- "${entrypoint[@]}" "${cmd[@]}" >"$1" 2>&1 9>&- &
  service_pid=$!
  pids+=("$service_pid")
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$base/health/live" 2>/dev/null; do
    if ! kill -0 "$service_pid" 2>/dev/null; then tail -30 "$1"; die "the service exited before it answered"; fi
    [ "$SECONDS" -lt "$deadline" ] || { tail -30 "$1"; die "the service did not answer on $base within 60 s"; }
    sleep 0.5
  done
}

# The service process itself (PID 1 under an engine): below the buildah process and its helpers
# (buildah-chroot-runtime, buildah-chroot-exec), the one that runs the image's entrypoint program.
program=$(basename "${entrypoint[0]:-${cmd[0]}}")
service_process() {
  local p argv0
  for p in $(descendants "$service_pid"); do
    argv0=$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -1) || continue
    if [ "$(basename "$argv0")" = "$program" ]; then echo "$p"; return; fi
  done
}

start=$SECONDS
start_service "$tmp/service.log"
pass "the service answers on $base ($((SECONDS - start)) s after start, PORT=$port)"

pid=$(service_process)
[ -n "$pid" ] || die "no IngestionService process below buildah run $service_pid"
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
check "the service process runs as uid $uid, not root" test "$uid" -ne 0

# Listening on every interface (0.0.0.0 or ::), as a container must for its port to be published.
port_hex=$(printf '%04X' "$port")
check "the service listens on all interfaces on port $port" \
  bash -c 'cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$1" '"'"'$4 == "0A" && $2 ~ /^0+:/ && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }'"'" _ "$port_hex"

code=$(curl -sS -o "$tmp/live" -w '%{http_code}' "$base/health/live")
check "GET /health/live answers 200 (got $code: $(head -c 80 "$tmp/live"))" test "$code" = 200
code=$(curl -sS -o "$tmp/ready" -w '%{http_code}' "$base/health/ready")
check "GET /health/ready answers 200 (got $code)" test "$code" = 200

# The image's own HEALTHCHECK, run inside the container as the engine would (same user and env).
run_healthcheck() {
  case "${healthcheck[0]}" in
    CMD-SHELL) buildah run "${run_args[@]}" "$ctr" -- /bin/sh -c "${healthcheck[1]}" ;;
    CMD)       buildah run "${run_args[@]}" "$ctr" -- "${healthcheck[@]:1}" ;;
    *)         return 2 ;;
  esac
}
check "the image's HEALTHCHECK passes inside the running container" run_healthcheck

# The API: submit, then read the status until the window has fetched the three ids.
code=$(curl -sS -o "$tmp/ingest" -D "$tmp/ingest.headers" -w '%{http_code}' -X POST "$base/ingest" \
         -H 'Content-Type: application/json' -d '{"ids":[1,2,3],"priority":"HIGH"}')
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("ingestion_id", ""))' <"$tmp/ingest" 2>/dev/null || true)
check "POST /ingest answers 202 with an ingestion_id (got $code, id '${id}')" bash -c '[ "$1" = 202 ] && [ -n "$2" ]' _ "$code" "$id"
check "POST /ingest gives Location: /status/$id" grep -qi "^Location: /status/$id" "$tmp/ingest.headers"

status="" code=""
if [ -n "$id" ]; then
  deadline=$((SECONDS + 30))
  while :; do
    code=$(curl -sS -o "$tmp/status" -w '%{http_code}' "$base/status/$id")
    status=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"] if d.get("ingestion_id") == sys.argv[1] else "wrong-id")' "$id" <"$tmp/status" 2>/dev/null || true)
    { [ "$code" = 200 ] && [ "$status" = completed ]; } || [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.5
  done
fi
check "GET /status/{id} answers 200 and reaches 'completed' (got $code, '$status')" \
  bash -c '[ "$1" = 200 ] && [ "$2" = completed ]' _ "$code" "$status"

# What a user opens: the dashboard at / and the API reference at /docs.
code=$(curl -sS -o "$tmp/page" -w '%{http_code} %{content_type}' "$base/")
check "GET / serves the dashboard page (got $code)" bash -c '[[ $1 == "200 text/html"* ]] && grep -qi "<html" "$2"' _ "$code" "$tmp/page"
code=$(curl -sS -L -o /dev/null -w '%{http_code}' "$base/docs")
check "GET /docs serves the API reference (got $code)" test "$code" = 200

# The state is on the volume, written by the service's user.
db="$data_dir/ingestion.db"
check "the SQLite file is on the /data volume, owned by uid $uid" \
  bash -c '[ -s "$1" ] && [ "$(stat -c %u "$1")" = "$2" ]' _ "$db" "$uid"

# `docker stop`: SIGTERM to the service; it finishes and exits 0.
kill -TERM "$pid"
deadline=$((SECONDS + 30)) stopped=""
while [ "$SECONDS" -lt "$deadline" ]; do kill -0 "$service_pid" 2>/dev/null || { stopped=yes; break; }; sleep 0.2; done
if [ -n "$stopped" ]; then
  set +e; wait "$service_pid"; exit_code=$?; set -e
  check "on SIGTERM the service stops and exits 0 (exit code $exit_code)" test "$exit_code" -eq 0
else
  fail "on SIGTERM the service did not stop within 30 s"
fi

# The same HEALTHCHECK fails once nothing listens: it is a real check.
healthcheck_fails() { ! run_healthcheck >/dev/null 2>&1; }
check "the HEALTHCHECK fails once the service is down" healthcheck_fails

# A new container on the same volume knows the ingestion: the state outlives the container.
buildah rm "$ctr" >/dev/null; containers=("${containers[@]/$ctr}")
new_container
start_service "$tmp/service2.log"
code=$(curl -sS -o "$tmp/status2" -w '%{http_code}' "$base/status/$id")
status=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("status", ""))' <"$tmp/status2" 2>/dev/null || true)
check "a new container on the same volume still knows the ingestion (got $code, '$status')" \
  bash -c '[ "$1" = 200 ] && [ "$2" = completed ]' _ "$code" "$status"

# --- summary ----------------------------------------------------------------------------------
if [ "$failures" -eq 0 ]; then
  echo "verify: all checks passed (image $size)"
else
  echo "verify: $failures check(s) failed; the service's log:"
  tail -40 "$tmp/service.log"
  exit 1
fi
