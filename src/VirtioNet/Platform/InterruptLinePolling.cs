using System.Diagnostics;

namespace VirtioNet.Platform;

/// <summary>
/// Waiting on a line that nothing wakes (a message cell in memory, or a group of them): poll
/// <see cref="IInterruptLine.IsRaised"/>, spinning briefly (a reply to a frame just sent arrives within tens of
/// microseconds), then yielding, then sleeping a millisecond at a time, so an idle driver costs little CPU while a busy
/// one sees messages at once.
/// </summary>
internal static class InterruptLinePolling
{
    // How long a wait spins before yielding, and yields before sleeping.
    private static readonly TimeSpan SpinPhase = TimeSpan.FromMicroseconds(50);
    private static readonly TimeSpan YieldPhase = TimeSpan.FromMilliseconds(2);

    /// <summary>True once <paramref name="line"/> is raised, false when <paramref name="timeout"/> passes first.</summary>
    public static bool Wait(IInterruptLine line, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (line.IsRaised)
            {
                return true;
            }

            TimeSpan elapsed = clock.Elapsed;
            if (elapsed >= timeout)
            {
                return false;
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (elapsed < SpinPhase)
            {
                Thread.SpinWait(32);
            }
            else if (elapsed < YieldPhase)
            {
                Thread.Yield();
            }
            else
            {
                Thread.Sleep(1);
            }
        }
    }
}
