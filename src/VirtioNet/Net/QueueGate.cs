using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>
/// Who is inside one receive or transmit queue: nobody, the one worker thread that owns it, or the device's recovery.
/// Every public operation of a queue enters the gate without waiting; a second thread finds it taken and gets an
/// exception instead of racing the owner, and a worker that arrives while the device is being recovered gets a
/// <see cref="VirtioException"/> with <see cref="VirtioErrorReason.DeviceRecovering"/> instead of a half-built ring.
/// </summary>
/// <remarks>
/// One compare-exchange per call (a burst or a frame), no lock, no allocation. Re-entry by the owning thread (a send
/// that reclaims) passes through. Recovery closes the gate only after the owner has left it, so it never pulls a ring
/// from under a call in progress.
/// </remarks>
internal sealed class QueueGate
{
    // The owner's managed thread id while a worker is inside; Recovering or Failed while recovery holds the gate.
    private const int Free = 0;
    private const int Recovering = -1;
    private const int Failed = -2;

    // Free, a thread id, Recovering or Failed.
    private int _owner;

    // Why the gate stays shut after a recovery that failed.
    private string? _failure;

    // The queue's name for messages ("receiveq1").
    private readonly string _name;

    internal QueueGate(string name) => _name = name;

    /// <summary>
    /// Enters as the calling thread. Returns true when this call entered (and must <see cref="Exit"/>), false when the
    /// thread was already inside (a nested call).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool Enter()
    {
        int self = Environment.CurrentManagedThreadId;
        int owner = Interlocked.CompareExchange(ref _owner, self, Free);
        if (owner == Free)
        {
            return true;
        }

        if (owner == self)
        {
            return false;
        }

        ThrowTaken(owner);
        return false;
    }

    /// <summary>Leaves the gate when <paramref name="entered"/> says this call entered it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Exit(bool entered)
    {
        if (entered)
        {
            Volatile.Write(ref _owner, Free);
        }
    }

    /// <summary>
    /// Recovery takes the gate: waits (spinning, then yielding) until the worker inside leaves, at most
    /// <paramref name="timeout"/>. A worker that is the calling thread itself and is inside counts as gone: recovery
    /// started from within its own call. Returns false on timeout, leaving the gate as it was.
    /// </summary>
    internal bool TryClose(TimeSpan timeout)
    {
        int self = Environment.CurrentManagedThreadId;
        var clock = Stopwatch.StartNew();
        var spinner = default(SpinWait);
        while (true)
        {
            int owner = Volatile.Read(ref _owner);
            if ((owner == Free || owner == self || owner == Failed) && Interlocked.CompareExchange(ref _owner, Recovering, owner) == owner)
            {
                _failure = null;
                return true;
            }

            if (clock.Elapsed >= timeout)
            {
                return false;
            }

            spinner.SpinOnce();
        }
    }

    /// <summary>Recovery is done and the queue is whole again: workers may enter.</summary>
    internal void Open() => Volatile.Write(ref _owner, Free);

    /// <summary>Recovery failed: every later call is refused with <paramref name="reason"/> until the device is disposed.</summary>
    internal void Fail(string reason)
    {
        _failure = reason;
        Volatile.Write(ref _owner, Failed);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowTaken(int owner)
    {
        if (owner == Recovering)
        {
            throw new VirtioException(VirtioErrorReason.DeviceRecovering, $"{_name}: the device is being reset and set up again; try again once it has recovered.");
        }

        if (owner == Failed)
        {
            throw new VirtioException(VirtioErrorReason.DeviceNeedsReset, $"{_name}: the device could not be recovered ({_failure}); dispose it and open it again.");
        }

        throw new InvalidOperationException($"{_name} is in use by thread {owner}; a queue belongs to one worker at a time (thread {Environment.CurrentManagedThreadId} called it meanwhile).");
    }
}
