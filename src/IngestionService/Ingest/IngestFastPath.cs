using System.Buffers;

namespace IngestionService.Ingest;

/// <summary>
/// Reads the one shape nearly every client sends, <c>{"ids": [1, 2, 3], "priority": "HIGH"}</c> (either
/// order, any JSON whitespace), straight from the bytes. It accepts only documents that are valid JSON
/// and valid requests, so whatever it accepts the full reader would accept with the same result; on
/// anything else it declines and the full reader answers, errors included.
/// </summary>
internal static class IngestFastPath
{
    public static bool TryParse(ReadOnlySpan<byte> json, int maxIds, out Priority priority, out int[] ids)
    {
        priority = default;
        ids = [];
        var sawPriority = false;
        var sawIds = false;
        var i = SkipSpace(json, 0);
        if (i >= json.Length || json[i] != '{')
        {
            return false;
        }

        while (true)
        {
            i = SkipSpace(json, i + 1);
            if (Matches(json, i, "\"ids\""u8) && !sawIds)
            {
                i = SkipSpace(json, i + 5);
                if (i >= json.Length || json[i] != ':' || !TryReadIds(json, SkipSpace(json, i + 1), maxIds, out ids, out i))
                {
                    return false;
                }

                sawIds = true;
            }
            else if (Matches(json, i, "\"priority\""u8) && !sawPriority)
            {
                i = SkipSpace(json, i + 10);
                if (i >= json.Length || json[i] != ':' || !TryReadPriority(json, SkipSpace(json, i + 1), out priority, out i))
                {
                    return false;
                }

                sawPriority = true;
            }
            else
            {
                return false;
            }

            i = SkipSpace(json, i);
            if (i < json.Length && json[i] == ',')
            {
                continue;
            }

            if (i < json.Length && json[i] == '}' && sawIds && sawPriority)
            {
                return SkipSpace(json, i + 1) == json.Length;
            }

            return false;
        }
    }

    private static bool TryReadIds(ReadOnlySpan<byte> json, int i, int maxIds, out int[] ids, out int end)
    {
        ids = [];
        end = i;
        if (i >= json.Length || json[i] != '[')
        {
            return false;
        }

        // Every id takes at least two bytes ("1,"), which bounds the count without a second pass. The ids
        // are read into scratch space (the stack for small requests) and copied once into an exact array.
        var capacity = Math.Min(maxIds, (json.Length - i) / 2 + 1);
        int[]? rented = null;
        var buffer = capacity <= StackIds ? stackalloc int[StackIds] : (rented = ArrayPool<int>.Shared.Rent(capacity));
        try
        {
            var count = ReadIds(json, i + 1, buffer[..capacity], out end);
            if (count < 0)
            {
                return false;
            }

            ids = buffer[..count].ToArray();
            return true;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<int>.Shared.Return(rented);
            }
        }
    }

    private const int StackIds = 128;

    /// <summary>The ids after '[' up to its ']', into <paramref name="buffer"/>: how many, or -1 when the text is not such a list or has more ids than fit.</summary>
    private static int ReadIds(ReadOnlySpan<byte> json, int i, Span<int> buffer, out int end)
    {
        end = i;
        var count = 0;
        i = SkipSpace(json, i);
        while (true)
        {
            // An integer without sign, fraction, exponent or leading zero, within 1 ..= 1 000 000 007.
            if (i >= json.Length || json[i] is < (byte)'1' or > (byte)'9')
            {
                return -1;
            }

            long value = 0;
            var digits = 0;
            while (i < json.Length && json[i] is >= (byte)'0' and <= (byte)'9')
            {
                value = (value * 10) + (json[i] - '0');
                i++;
                if (++digits > 10)
                {
                    return -1;
                }
            }

            if (value > IngestRequestParser.MaxId || count == buffer.Length)
            {
                return -1;
            }

            buffer[count++] = (int)value;
            i = SkipSpace(json, i);
            if (i < json.Length && json[i] == ',')
            {
                i = SkipSpace(json, i + 1);
                continue;
            }

            if (i < json.Length && json[i] == ']')
            {
                end = i + 1;
                return count;
            }

            return -1;
        }
    }

    private static bool TryReadPriority(ReadOnlySpan<byte> json, int i, out Priority priority, out int end)
    {
        end = i;
        priority = default;
        foreach (var (text, value) in Priorities)
        {
            if (Matches(json, i, text))
            {
                priority = value;
                end = i + text.Length;
                return true;
            }
        }

        return false;
    }

    private static readonly (byte[] Text, Priority Value)[] Priorities =
        [("\"HIGH\""u8.ToArray(), Priority.High), ("\"MEDIUM\""u8.ToArray(), Priority.Medium), ("\"LOW\""u8.ToArray(), Priority.Low)];

    private static bool Matches(ReadOnlySpan<byte> json, int i, ReadOnlySpan<byte> text) =>
        i + text.Length <= json.Length && json.Slice(i, text.Length).SequenceEqual(text);

    private static int SkipSpace(ReadOnlySpan<byte> json, int i)
    {
        while (i < json.Length && json[i] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            i++;
        }

        return i;
    }
}
