using System.Buffers;
using System.Text;
using IngestionService.Ingest;

namespace IngestionService.Tests.Api;

/// <summary>The hand-written fast path agrees with the full JSON reader on every body it accepts.</summary>
public sealed class IngestParserTests
{
    public static TheoryData<string> ValidBodies => new()
    {
        """{"ids":[1,2,3],"priority":"HIGH"}""",
        """{"priority":"LOW","ids":[1000000007]}""",
        " \r\n\t{ \"ids\" : [ 1 , 2\n,3 ] ,\n \"priority\" : \"MEDIUM\" } \n",
        """{"ids":[5,5,5,5],"priority":"MEDIUM"}""",
        """{"ids":[1],"priority":"\u0048IGH"}""",
    };

    public static TheoryData<string> RefusedBodies => new()
    {
        """{"ids":[0],"priority":"HIGH"}""",
        """{"ids":[01],"priority":"HIGH"}""",
        """{"ids":[1e0],"priority":"HIGH"}""",
        """{"ids":[-1],"priority":"HIGH"}""",
        """{"ids":[1000000008],"priority":"HIGH"}""",
        """{"ids":[99999999999],"priority":"HIGH"}""",
        """{"ids":[1,],"priority":"HIGH"}""",
        """{"ids":[1],"priority":"HIGH",}""",
        """{"ids":[1],"priority":"HIGHER"}""",
        """{"ids":[1],"priority":"HIGH"}}""",
        """{"ids":[1],"ids":[2],"priority":"HIGH"}""",
        """{"ids":[1]}""",
        """{"ids":[1,2,3,4,5,6,7,8,9,10,11],"priority":"HIGH"}""",
        """[{"ids":[1],"priority":"HIGH"}]""",
        """{"ids":[1],"priority":"LOW","note":"an unknown field is refused, not ignored"}""",
    };

    [Theory]
    [MemberData(nameof(ValidBodies))]
    public void AcceptedBodiesGiveTheSameRequestEitherWay(string body)
    {
        var parsed = Parse(body);
        var full = IngestRequestParser.ParseFull(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), 10);

        Assert.Equal(IngestParseOutcome.Ok, full.Outcome);
        Assert.Equal(full.Outcome, parsed.Outcome);
        Assert.Equal(full.Priority, parsed.Priority);
        Assert.Equal(full.Ids, parsed.Ids);
    }

    [Theory]
    [MemberData(nameof(RefusedBodies))]
    public void RefusedBodiesAreRefusedEitherWay(string body)
    {
        var parsed = Parse(body);
        var full = IngestRequestParser.ParseFull(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), 10);

        Assert.NotEqual(IngestParseOutcome.Ok, full.Outcome);
        Assert.Equal(full.Outcome, parsed.Outcome);
    }

    [Theory]
    [InlineData(3000, 100_000)] // more ids than the stack holds: read into a rented buffer
    [InlineData(3000, 2999)]    // one id too many, found on the rented buffer's last slot
    [InlineData(128, 128)]      // exactly the stack's room
    public void ManyIdsGiveTheSameAnswerEitherWay(int count, int maxIds)
    {
        var bytes = Encoding.UTF8.GetBytes($$"""{"ids":[{{string.Join(", ", Enumerable.Range(1, count))}}],"priority":"LOW"}""");

        var parsed = IngestRequestParser.Parse(new ReadOnlySequence<byte>(bytes), maxIds);
        var full = IngestRequestParser.ParseFull(new ReadOnlySequence<byte>(bytes), maxIds);

        Assert.Equal(count <= maxIds ? IngestParseOutcome.Ok : IngestParseOutcome.TooLarge, full.Outcome);
        Assert.Equal(full.Outcome, parsed.Outcome);
        Assert.Equal(full.Ids, parsed.Ids);
    }

    [Fact]
    public void ABodySplitOverSeveralSegmentsIsReadWhole()
    {
        var ids = Enumerable.Range(1, 5000).ToArray();
        var bytes = Encoding.UTF8.GetBytes($$"""{"ids":[{{string.Join(',', ids)}}],"priority":"LOW"}""");

        var parsed = IngestRequestParser.Parse(Segmented(bytes, 4096), 100_000);

        Assert.Equal(IngestParseOutcome.Ok, parsed.Outcome);
        Assert.Equal(ids, parsed.Ids);
    }

    private static IngestParseResult Parse(string body) =>
        IngestRequestParser.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(body)), 10);

    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int size)
    {
        var first = new Segment(bytes.AsMemory(0, Math.Min(size, bytes.Length)), 0);
        var last = first;
        for (var offset = size; offset < bytes.Length; offset += size)
        {
            last = last.Append(bytes.AsMemory(offset, Math.Min(size, bytes.Length - offset)));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
