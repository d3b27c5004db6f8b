using System.Buffers.Binary;
using System.Diagnostics;
using VirtioNet.Net;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// Sends numbered frames of varied sizes through a device whose backend forwards them back (testpmd macswap or io),
/// and checks every frame that returns byte for byte against what was sent.
/// </summary>
internal static class LoopbackTraffic
{
    /// <summary>The address frames are sent to (a locally administered one nobody owns).</summary>
    public static readonly byte[] PeerMac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    // IEEE 802 local experimental EtherType: nothing on the path interprets the payload.
    private const ushort ExperimentalEtherType = 0x88b5;

    /// <summary>
    /// Sends <paramref name="count"/> frames and waits for all of them to come back; returns how many did, after
    /// asserting that each returned frame is the one sent (with the MAC addresses swapped when <paramref name="swapped"/>).
    /// </summary>
    public static int Exchange(VirtioNetDevice device, int count, bool swapped, TimeSpan timeout)
    {
        var sent = new Dictionary<uint, byte[]>();
        byte[] receiveBuffer = new byte[device.Pairs[0].MaxReceiveFrameLength];
        int received = 0;
        int next = 0;
        var clock = Stopwatch.StartNew();
        while (received < count && clock.Elapsed < timeout)
        {
            // Keep at most 64 frames in flight: the backend drops what finds no receive buffer, as a wire would.
            while (next < count && next - received < 64)
            {
                byte[] frame = BuildFrame(device.MacAddress.Span, (uint)next, device.Pairs[0].MaxTransmitFrameLength);
                if (!device.Pairs[0].TrySend(frame))
                {
                    device.Pairs[0].Reclaim();
                    break;
                }

                sent.Add((uint)next, frame);
                next++;
            }

            device.Pairs[0].Reclaim();
            if (!device.Pairs[0].WaitForReceive(TimeSpan.FromMilliseconds(100), TestContext.Current.CancellationToken))
            {
                continue;
            }

            while (device.Pairs[0].TryReceive(receiveBuffer, out int length))
            {
                Verify(receiveBuffer.AsSpan(0, length), sent, swapped);
                received++;
            }
        }

        return received;
    }

    /// <summary>A frame to <see cref="PeerMac"/> from <paramref name="source"/> carrying <paramref name="sequence"/>; 60 to max bytes.</summary>
    public static byte[] BuildFrame(ReadOnlySpan<byte> source, uint sequence, int maxLength)
    {
        int length = 60 + (int)(sequence * 97 % (uint)(Math.Min(maxLength, 1514) - 60 + 1));
        byte[] frame = new byte[length];
        PeerMac.CopyTo(frame, 0);
        source.CopyTo(frame.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), ExperimentalEtherType);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(14), sequence);
        for (int i = 18; i < length; i++)
        {
            frame[i] = (byte)(sequence + (uint)i);
        }

        return frame;
    }

    private static void Verify(ReadOnlySpan<byte> frame, Dictionary<uint, byte[]> sent, bool swapped)
    {
        Assert.True(frame.Length >= 18, $"A frame of {frame.Length} bytes came back; every frame sent had at least 60.");
        uint sequence = BinaryPrimitives.ReadUInt32BigEndian(frame[14..]);
        Assert.True(sent.Remove(sequence, out byte[]? original), $"Frame {sequence} came back, but it was not sent or came back twice.");
        Assert.Equal(original.Length, frame.Length);
        byte[] expected = (byte[])original.Clone();
        if (swapped)
        {
            original.AsSpan(6, 6).CopyTo(expected);
            original.AsSpan(0, 6).CopyTo(expected.AsSpan(6));
        }

        Assert.True(frame.SequenceEqual(expected), $"Frame {sequence} ({frame.Length} bytes) came back with different contents.");
    }
}
