using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>The write-path contract on the embedded SQLite store.</summary>
public sealed class SqliteQueueStoreContractTests() : QueueStoreContractTests(new SqliteBackend());

/// <summary>The read-side contract on the embedded SQLite store.</summary>
public sealed class SqliteQueueReaderContractTests() : QueueReaderContractTests(new SqliteBackend());
