using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Offloads;
using VirtioNet.Net.Vlan;

namespace VirtioNet.Net;

/// <summary>
/// Short forms of the pair's one copying entry for tests that check one piece of a frame's metadata
/// (<see cref="VirtioNetQueuePair.TryReceive"/> reports all of it in one <see cref="ReceivedFrame"/>), and of sending
/// one frame with a tag (the pair's <see cref="VirtioNetQueuePair.VlanTag"/>). Shared by the unit and integration tests.
/// </summary>
internal static class QueuePairTestExtensions
{
    /// <summary><see cref="VirtioNetQueuePair.TryReceive"/>, keeping only the length.</summary>
    public static bool TryReceive(this VirtioNetQueuePair pair, Span<byte> destination, out int length)
    {
        bool received = pair.TryReceive(destination, out ReceivedFrame frame);
        length = frame.Length;
        return received;
    }

    /// <summary><see cref="VirtioNetQueuePair.TryReceive"/>, keeping the length and the offload state.</summary>
    public static bool TryReceive(this VirtioNetQueuePair pair, Span<byte> destination, out int length, out ReceivedFrameInfo info)
    {
        bool received = pair.TryReceive(destination, out ReceivedFrame frame);
        (length, info) = (frame.Length, frame.Offload);
        return received;
    }

    /// <summary><see cref="VirtioNetQueuePair.TryReceive"/>, keeping the length and the hash.</summary>
    public static bool TryReceive(this VirtioNetQueuePair pair, Span<byte> destination, out int length, out ReceiveHash hash)
    {
        bool received = pair.TryReceive(destination, out ReceivedFrame frame);
        (length, hash) = (frame.Length, frame.Hash);
        return received;
    }

    /// <summary><see cref="VirtioNetQueuePair.TryReceive"/> with the tag stripped for this frame, keeping the length and the tag.</summary>
    public static bool TryReceive(this VirtioNetQueuePair pair, Span<byte> destination, out int length, out VlanTag? tag)
    {
        bool strip = pair.StripVlanTags;
        pair.StripVlanTags = true;
        try
        {
            bool received = pair.TryReceive(destination, out ReceivedFrame frame);
            (length, tag) = (frame.Length, frame.VlanTag);
            return received;
        }
        finally
        {
            pair.StripVlanTags = strip;
        }
    }

    /// <summary><see cref="VirtioNetQueuePair.TrySend"/> with <paramref name="tag"/> as the pair's tag for this frame.</summary>
    public static bool TrySend(this VirtioNetQueuePair pair, ReadOnlySpan<byte> frame, VlanTag tag)
    {
        VlanTag? previous = pair.VlanTag;
        pair.VlanTag = tag;
        try
        {
            return pair.TrySend(frame);
        }
        finally
        {
            pair.VlanTag = previous;
        }
    }

    /// <summary>Sends a tagged frame on the pair the device's priority map gives the tag's priority.</summary>
    public static bool TrySendByPriority(this VirtioNetDevice device, ReadOnlySpan<byte> frame, VlanTag tag) =>
        device.Pairs[device.Control.PriorityMap.QueueFor(tag)].TrySend(frame, tag);
}
