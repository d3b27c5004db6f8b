using VirtioNet.Platform;

namespace VirtioNet.Transports.Pci;

/// <summary>
/// Several MSI-X vectors seen as one line: raised while any of them is latched. It is what
/// <see cref="IVirtioTransport.Interrupt"/> gives with one vector per queue, so a driver that waits on a single line
/// still wakes for every queue.
/// </summary>
internal sealed class MessageLineGroup : IInterruptLine
{
    // The transport's vectors; vectors opened later (as queues come up) join the same list.
    private readonly List<IMessageInterruptLine> _lines;

    public MessageLineGroup(List<IMessageInterruptLine> lines) => _lines = lines;

    public int Number => _lines.Count > 0 ? _lines[0].Number : 0;

    public bool IsRaised
    {
        get
        {
            foreach (IMessageInterruptLine line in _lines)
            {
                if (line.IsRaised)
                {
                    return true;
                }
            }

            return false;
        }
    }

    public long RaiseCount
    {
        get
        {
            long sum = 0;
            foreach (IMessageInterruptLine line in _lines)
            {
                sum += line.RaiseCount;
            }

            return sum;
        }
    }

    // Waiting on one member would miss the others, so the group polls them all, the way a message line polls its cell.
    public bool Wait(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        InterruptLinePolling.Wait(this, timeout, cancellationToken);

    public override string ToString() => $"MSI-X vectors {string.Join(',', _lines.Select(l => l.Number))}";
}
