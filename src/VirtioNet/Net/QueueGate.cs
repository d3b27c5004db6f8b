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
/// <para>
/// The owner's way in and out has no locked instruction and no fence: the gate remembers the last thread that entered
/// (<c>_owner</c>), and that thread marks itself inside with a plain store, then reads whether recovery has closed the
/// gate. A call costs a few loads and two stores to a line only the worker writes, once per burst, whatever the
/// burst's size. Re-entry by the owning thread (a send that reclaims) passes through.
/// </para>
/// <para>
/// The rare sides pay instead. Recovery marks the gate closed and then runs a process-wide memory barrier
/// (<see cref="Interlocked.MemoryBarrierProcessWide"/>, which makes every thread's earlier stores visible and orders
/// its later loads after them) before it reads the worker's mark: either the worker's "inside" store is visible to
/// recovery, which then waits for it to leave, or the worker's later read of the state sees "closed" and it backs out.
/// This is the asymmetric form of Dekker's handshake; the store-load fence the worker would otherwise need is the
/// barrier recovery runs on its behalf. A new thread taking the queue over (an async caller resumed on another pool
/// thread) claims it with a compare-exchange and the same barrier, so it never overlaps a previous owner still inside.
/// </para>
/// </remarks>
internal sealed class QueueGate
{
    private const int Opened = 0;
    private const int Recovering = 1;
    private const int Failed = 2;

    // The managed thread id of the last worker that entered (0: none yet). Changed only by a compare-exchange.
    private int _owner;

    // 1 while the owner is inside a call; written only by the owner, with plain (release) stores.
    private int _inside;

    // Opened, Recovering or Failed; written only by recovery.
    private int _state;

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
        if (Volatile.Read(ref _owner) != self)
        {
            return EnterAsNewOwner(self);
        }

        if (_inside != 0)
        {
            return false;
        }

        // The mark, then the state: recovery's process-wide barrier orders the two for it (see the remarks).
        Volatile.Write(ref _inside, 1);
        int state = Volatile.Read(ref _state);
        if (state != Opened)
        {
            BackOut(state);
        }

        return true;
    }

    /// <summary>
    /// Enters as <see cref="Enter"/> does, and returns the scope whose <see cref="Scope.Dispose"/> leaves:
    /// <c>using QueueGate.Scope inside = gate.EnterScope();</c> is the try/finally every gated call needs, as
    /// <see cref="Lock.EnterScope"/> is for a lock.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Scope EnterScope() => new(this, Enter());

    /// <summary>
    /// True when the calling thread is the last one that entered, or nobody has entered yet: a call from it now cannot
    /// meet another worker inside. Rare paths (an announcement noticed on some thread) use it to decide whether to act
    /// now or leave the work to the owner's next call.
    /// </summary>
    internal bool IsOwnerOrUnowned
    {
        get
        {
            int owner = Volatile.Read(ref _owner);
            return owner == 0 || owner == Environment.CurrentManagedThreadId;
        }
    }

    /// <summary>Leaves the gate when <paramref name="entered"/> says this call entered it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Exit(bool entered)
    {
        if (entered)
        {
            Volatile.Write(ref _inside, 0);
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
        int previous = Volatile.Read(ref _state);
        Volatile.Write(ref _state, Recovering);

        // From here on, a worker that was not seen inside will see Recovering when it reads the state.
        Interlocked.MemoryBarrierProcessWide();
        var clock = Stopwatch.StartNew();
        var spinner = default(SpinWait);
        while (Volatile.Read(ref _inside) != 0 && Volatile.Read(ref _owner) != self)
        {
            if (clock.Elapsed >= timeout)
            {
                Volatile.Write(ref _state, previous);
                return false;
            }

            spinner.SpinOnce();
        }

        _failure = null;
        return true;
    }

    /// <summary>Recovery is done and the queue is whole again: workers may enter.</summary>
    internal void Open() => Volatile.Write(ref _state, Opened);

    /// <summary>Recovery failed: every later call is refused with <paramref name="reason"/> until the device is disposed.</summary>
    internal void Fail(string reason)
    {
        _failure = reason;
        Volatile.Write(ref _state, Failed);
    }

    // A thread other than the last owner: claims the queue unless the owner is inside. The compare-exchange keeps two
    // newcomers apart; the barrier makes a previous owner's mark visible before it is read (as TryClose does).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool EnterAsNewOwner(int self)
    {
        ThrowIfClosed();
        int owner = Volatile.Read(ref _owner);
        if (owner != 0 && Volatile.Read(ref _inside) != 0)
        {
            ThrowTaken(owner);
        }

        int seen = Interlocked.CompareExchange(ref _owner, self, owner);
        if (seen != owner)
        {
            ThrowTaken(seen);
        }

        Interlocked.MemoryBarrierProcessWide();
        if (Volatile.Read(ref _inside) != 0)
        {
            ThrowTaken(owner);
        }

        Volatile.Write(ref _inside, 1);
        int state = Volatile.Read(ref _state);
        if (state != Opened)
        {
            BackOut(state);
        }

        return true;
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void BackOut(int state)
    {
        Volatile.Write(ref _inside, 0);
        ThrowClosed(state);
    }

    private void ThrowIfClosed()
    {
        int state = Volatile.Read(ref _state);
        if (state != Opened)
        {
            ThrowClosed(state);
        }
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowClosed(int state)
    {
        if (state == Recovering)
        {
            throw new VirtioException(VirtioErrorReason.DeviceRecovering, $"{_name}: the device is being reset and set up again; try again once it has recovered.");
        }

        if (state == Failed)
        {
            throw new VirtioException(VirtioErrorReason.DeviceNeedsReset, $"{_name}: the device could not be recovered ({_failure}); dispose it and open it again.");
        }

        throw new VirtioException(VirtioErrorReason.DeviceRecovering, $"{_name}: the device was being reset and set up again; try again.");
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowTaken(int owner) =>
        throw new InvalidOperationException($"{_name} is in use by thread {owner}; a queue belongs to one worker at a time (thread {Environment.CurrentManagedThreadId} called it meanwhile).");

    /// <summary>One call's stay inside the gate (<see cref="EnterScope"/>); a nested call's scope leaves nothing.</summary>
    internal readonly ref struct Scope
    {
        private readonly QueueGate _gate;
        private readonly bool _entered;

        internal Scope(QueueGate gate, bool entered)
        {
            _gate = gate;
            _entered = entered;
        }

        /// <summary>Leaves the gate when this scope's call entered it.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Dispose() => _gate.Exit(_entered);
    }
}
