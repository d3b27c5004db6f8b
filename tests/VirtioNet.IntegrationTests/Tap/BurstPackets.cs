using VirtioNet.Net;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>What the tests do with a burst from <see cref="VirtioNetReceiveQueue.ReceiveBurst(Span{ReceivedPacket}, ReceiveBurstOptions)"/>.</summary>
internal static class BurstPackets
{
    /// <summary>
    /// The packet that starts at <paramref name="index"/>, its buffers joined into one array (for a test to parse; the
    /// driver handed them out where the device wrote them), and in <paramref name="buffers"/> how many entries it spans.
    /// </summary>
    public static byte[] Join(ReadOnlySpan<ReceivedPacket> burst, int index, out int buffers)
    {
        buffers = Math.Max(1, burst[index].SegmentCount);
        int length = 0;
        for (int k = index; k < index + buffers; k++)
        {
            length += burst[k].Length;
        }

        byte[] frame = new byte[length];
        int offset = 0;
        for (int k = index; k < index + buffers; k++)
        {
            burst[k].Span.CopyTo(frame.AsSpan(offset));
            offset += burst[k].Length;
        }

        return frame;
    }
}
