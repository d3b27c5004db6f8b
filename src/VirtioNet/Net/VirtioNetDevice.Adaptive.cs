using VirtioNet.Core;

namespace VirtioNet.Net;

// Adaptive operation (OperationMode.Adaptive): a receive wait polls the ring for a budget before it arms the notification
// and sleeps as interrupt mode does. The budget adapts per queue (AdaptivePolling); everything else is interrupt mode's.
public sealed partial class VirtioNetDevice
{
    // Spin between two looks at the ring: Thread.SpinWait(1) is one normalised pause (tens of nanoseconds), enough to keep
    // the looks from hammering the line the device writes while it stays far below the cost of a sleep.
    private const int SpinPerLook = 1;

    // Per pair in adaptive mode: the receive queue's tuner; empty otherwise.
    private AdaptivePolling[] _adaptive = [];

    /// <summary>True when the driver waits on the interrupt line (interrupt and adaptive modes).</summary>
    internal bool UsesInterrupts => OperationMode != OperationMode.Poll;

    /// <summary>Pair <paramref name="pair"/>'s busy-poll tuner in adaptive mode (for tests and figures).</summary>
    internal AdaptivePolling? AdaptivePollingOf(int pair) => (uint)pair < (uint)_adaptive.Length ? _adaptive[pair] : null;

    // Bring-up: one tuner per pair, created once so that waiting allocates nothing.
    private void CreateAdaptivePolling()
    {
        if (OperationMode == OperationMode.Adaptive)
        {
            _adaptive = new AdaptivePolling[_receiveQueues.Length];
            for (int pair = 0; pair < _adaptive.Length; pair++)
            {
                _adaptive[pair] = new AdaptivePolling(_options.BusyPollBudget);
            }
        }
    }

    // The adaptive wait: poll for the budget, else arm and sleep (WaitForReceiveOnInterrupt asks for the notification and
    // re-checks the ring before it sleeps, §2.7.10, so a frame that lands between the last look and the arming is seen).
    private bool WaitForReceiveAdaptive(VirtioNetReceiveQueue rx, TimeSpan timeout, CancellationToken cancellationToken)
    {
        int pair = rx.QueueIndex / 2;
        if (BusyPollBeforeArming(rx, pair))
        {
            return true;
        }

        return WaitForReceiveOnInterrupt(pair, timeout, cancellationToken);
    }

    // Looks at the ring up to the pair's budget; true (a hit) when a frame is there. False once the budget is spent: the
    // caller then arms the notification. Either way the tuner is told.
    private bool BusyPollBeforeArming(VirtioNetReceiveQueue rx, int pair)
    {
        if (OperationMode != OperationMode.Adaptive)
        {
            return false;
        }

        AdaptivePolling tuner = _adaptive[pair];
        int budget = tuner.BeginWait(rx.Statistics.Packets);
        for (int look = 0; look < budget; look++)
        {
            if (rx.Queue.IsBroken || HasUsedGated(rx))
            {
                tuner.Hit();
                return true;
            }

            Thread.SpinWait(SpinPerLook);
        }

        tuner.Armed(rx.Statistics.Packets);
        return false;
    }
}
