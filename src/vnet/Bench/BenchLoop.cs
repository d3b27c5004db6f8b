using System.Runtime.CompilerServices;
using VirtioNet.Net;

namespace VirtioNet.Cli.Bench;

/// <summary>What the rate and latency benches' loops share: the frame they send, how a burst goes to the device, and their longest sleep.</summary>
internal static class BenchLoop
{
    /// <summary>Ethernet (14) + IPv4 (20) + UDP (8) header bytes: where a UDP payload would start.</summary>
    public const int HeaderBytes = 42;

    /// <summary>
    /// Interrupt mode: the longest single sleep in WaitForReceive, so that the end of the run and Ctrl-C are seen within it
    /// (the wait is given no cancellation token: a cancellable wait registers a callback, an allocation, per sleep).
    /// </summary>
    public static readonly TimeSpan SleepSlice = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// A broadcast-free <paramref name="size"/>-byte test frame: to 02:00:00:00:00:01 (locally administered, as DPDK's txonly
    /// peers address theirs), from <paramref name="source"/> (a peer that swaps the addresses, as testpmd's macswap does,
    /// sends it back to that MAC), IPv4 EtherType; the rest zero.
    /// </summary>
    public static byte[] Frame(ReadOnlySpan<byte> source, int size)
    {
        byte[] frame = new byte[size];
        frame[0] = 0x02;
        frame[5] = 0x01;
        source.CopyTo(frame.AsSpan(6));
        frame[12] = 0x08;
        frame[13] = 0x00;
        return frame;
    }

    /// <summary>Hands the first <paramref name="count"/> packets of <paramref name="lent"/> to the device, gives back those it did not take, and returns how many it took.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Transmit(VirtioNetQueuePair pair, TransmitPacket[] lent, int count)
    {
        int queued = pair.TransmitBurst(lent.AsSpan(0, count), out _);
        if (queued < count)
        {
            pair.FreeBurst(lent.AsSpan(queued, count - queued));
        }

        return queued;
    }
}
