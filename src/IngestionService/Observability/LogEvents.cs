namespace IngestionService.Observability;

/// <summary>
/// Every log event id the service writes, in one place, so they stay stable and unique: the dispatcher
/// from 1, the embedded store from 100, the shared store from 200, the metrics from 300, start-up 400,
/// an operator's control actions from 500, retention and a store refusing writes from 600.
/// </summary>
internal static class LogEvents
{
    public const int WindowStarted = 1;
    public const int WindowCompleted = 2;
    public const int FetchThrew = 3;
    public const int DispatchFailed = 4;
    public const int FetchFailed = 5;
    public const int UpstreamPaused = 6;
    public const int CompleteFailed = 7;
    public const int HandBackFailed = 8;
    public const int IdsExpired = 9;

    public const int RecoveredWindow = 100;
    public const int CheckpointFailed = 101;
    public const int WalRestartPostponed = 102;
    public const int StoreVacuumed = 103;

    public const int ExpiredWindow = 200;
    public const int LeaseLost = 201;
    public const int LeaseRenewalFailed = 202;
    public const int HandBackOnShutdownFailed = 203;
    public const int LeaseDeadline = 204;
    public const int WakeUpsLost = 205;
    public const int EventFanoutFailed = 206;
    public const int EventUnreadable = 207;

    public const int SampleFailed = 300;

    public const int Started = 400;

    public const int QueuePaused = 500;
    public const int QueueResumed = 501;
    public const int IngestionCancelled = 502;
    public const int IngestionReprioritised = 503;
    public const int LimitsChanged = 504;
    public const int LimitsReset = 505;

    public const int Swept = 600;
    public const int SweepFailed = 601;
    public const int StoreRefusingWrites = 602;
    public const int StoreWritesAgain = 603;

    public const int WebhooksUnsigned = 700;
    public const int OutboxFailed = 701;
    public const int DeliveryRecordFailed = 702;
    public const int DeliveryRetrying = 703;
    public const int DeliveryDone = 704;
    public const int DeliveryFailed = 705;
}
