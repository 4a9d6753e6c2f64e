namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// Tests that measure real time to a fraction of a second run alone, after the parallel ones: on a
/// 2-core machine, three service processes starting next to them made an idle service's first window
/// start 0.5-0.8 s late, which is the machine's fault and not the scheduler's. The same goes for leases
/// of a few seconds (several instances) and a pause measured to the second (the HTTP upstream end to end):
/// starved by the parallel tests, a heartbeat came too late and a live instance lost its window.
/// </summary>
[CollectionDefinition(nameof(RunsAlone), DisableParallelization = true)]
public sealed class RunsAlone;
