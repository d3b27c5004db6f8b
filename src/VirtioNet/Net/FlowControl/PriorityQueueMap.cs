using VirtioNet.Net.Vlan;

namespace VirtioNet.Net.FlowControl;

/// <summary>
/// Maps the eight 802.1p priorities (the PCP bits of a VLAN tag) to transmit queue pairs, the way mqprio's priority
/// map does on Linux: virtio has no priority queues of its own, but separate queue pairs keep a bulk flow from
/// delaying a latency-sensitive one in the same ring. Immutable.
/// </summary>
public sealed class PriorityQueueMap
{
    /// <summary>The number of 802.1p priorities (0 to 7).</summary>
    public const int PriorityCount = VlanTag.MaxPriority + 1;

    private readonly int[] _queues;

    /// <summary>An explicit map: entry p is the 0-based queue pair of priority p.</summary>
    /// <exception cref="ArgumentException">Not eight entries, or an entry outside 0 to <paramref name="queuePairs"/> - 1.</exception>
    public PriorityQueueMap(ReadOnlySpan<int> queueOfPriority, int queuePairs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queuePairs, 1);
        if (queueOfPriority.Length != PriorityCount)
        {
            throw new ArgumentException($"A priority map has one entry per 802.1p priority (8); this one has {queueOfPriority.Length}.", nameof(queueOfPriority));
        }

        for (int p = 0; p < PriorityCount; p++)
        {
            if ((uint)queueOfPriority[p] >= (uint)queuePairs)
            {
                throw new ArgumentException($"Priority {p} maps to queue pair {queueOfPriority[p]}, but only {queuePairs} exist (0 to {queuePairs - 1}).", nameof(queueOfPriority));
            }
        }

        _queues = queueOfPriority.ToArray();
        QueuePairs = queuePairs;
    }

    /// <summary>The queue pairs the map spreads over.</summary>
    public int QueuePairs { get; }

    /// <summary>
    /// The default map over <paramref name="queuePairs"/> pairs: priorities split into equal contiguous bands, lowest
    /// priorities on pair 0 (priority p → p × pairs / 8), so that with two pairs 0-3 share one and 4-7 the other.
    /// </summary>
    public static PriorityQueueMap Spread(int queuePairs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queuePairs, 1);
        Span<int> map = stackalloc int[PriorityCount];
        for (int p = 0; p < PriorityCount; p++)
        {
            map[p] = p * Math.Min(queuePairs, PriorityCount) / PriorityCount;
        }

        return new PriorityQueueMap(map, queuePairs);
    }

    /// <summary>The 0-based queue pair of an 802.1p priority.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Outside 0 to 7.</exception>
    public int QueueFor(int priority)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(priority);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(priority, VlanTag.MaxPriority);
        return _queues[priority];
    }

    /// <summary>The 0-based queue pair of a tagged frame's priority.</summary>
    public int QueueFor(VlanTag tag) => _queues[tag.Priority];

    /// <summary>The map as eight entries, priority 0 first.</summary>
    public IReadOnlyList<int> ToList() => _queues;
}
