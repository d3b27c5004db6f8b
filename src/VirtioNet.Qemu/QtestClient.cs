using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Unicode;

namespace VirtioNet.Qemu;

/// <summary>
/// The client side of QEMU's qtest protocol: this process plays the guest CPU, reading and writing guest-physical
/// addresses (device registers, the boot ROM) one text line at a time, and sees interrupt lines change.
/// Thread-safe: commands from several threads are sent in turn and their replies matched in order.
/// </summary>
/// <remarks>
/// <para>
/// A background reader thread owns the receiving side. Replies (<c>OK</c>, <c>ERR</c>, <c>FAIL</c>) complete the
/// oldest command in flight; asynchronous <c>IRQ raise N</c> / <c>IRQ lower N</c> lines can arrive between a command
/// and its <c>OK</c>, or while no command is in flight, and go to the <see cref="QtestInterruptLine"/> of that number.
/// Because the reader handles lines in the order QEMU sent them, an interrupt change caused by a register write is
/// visible on its line by the time the write returns.
/// </para>
/// <para>
/// Every wait has a timeout, and a QEMU that exits or closes the socket fails every command in flight and every
/// later one with a <see cref="VirtioException"/> that quotes QEMU's exit code and the tail of its stderr, so a dead
/// machine is an error, never a hang. After a timeout the reply stream can no longer be matched to commands, so the
/// client is broken for good.
/// </para>
/// <para>
/// QEMU 7.2 asserts on a command with missing arguments (<c>readl</c> alone aborts the whole process), so the typed
/// methods here only ever send complete commands. A round trip costs 40-90 µs over a unix socket: keep register
/// traffic off the per-packet path, or use <see cref="ExecuteBatch"/>, which pipelines (about 7 µs per command).
/// </para>
/// </remarks>
public sealed class QtestClient : IDisposable
{
    /// <summary>The largest interrupt line number tracked (the PLIC's source numbers are below 1024).</summary>
    public const int MaxInterruptLine = 1023;

    // The largest piece of guest memory one b64read/b64write moves, so that no reply line grows without bound.
    private const int TransferChunk = 48 * 1024;

    // Reply lines longer than this mean the stream is corrupt.
    private const int MaxLineLength = 4 * 1024 * 1024;

    // Makes "queue the slot, then send its bytes" one step per command, so that the order of _pending is the order
    // on the wire. The reader never takes it: a sender blocked on a full socket must not stop replies being drained.
    private readonly Lock _sendLock = new();

    // Guards _pending, _pool and the fault fields; held only for a few instructions, by senders and the reader.
    private readonly Lock _stateLock = new();

    // Commands sent and not yet answered, oldest first: replies arrive in the order commands were sent.
    private readonly Queue<QtestPendingReply> _pending = new();

    // Reply slots ready for reuse, so register accesses allocate nothing.
    private readonly Stack<QtestPendingReply> _pool = new();

    // The connection QEMU made to this process's listening socket.
    private readonly Socket _socket;

    // Says why QEMU went away (exit code and stderr tail); called once, when the connection breaks.
    private readonly Func<string> _describeDeath;

    // Interrupt lines by number, created on first mention (by an IRQ line or an open) and never removed.
    private readonly QtestInterruptLine?[] _lines = new QtestInterruptLine?[MaxInterruptLine + 1];

    // The thread that reads replies and IRQ lines.
    private readonly Thread _reader;

    // Set once: the message every later command fails with, and its reason.
    private string? _fault;
    private VirtioErrorReason _faultReason;

    // Set once by Dispose.
    private volatile bool _disposed;

    /// <summary>Wraps a connected qtest socket and starts the reader thread.</summary>
    /// <param name="socket">The connection QEMU's <c>-qtest unix:PATH</c> made. The client owns it from now on.</param>
    /// <param name="describeDeath">Says why the connection broke (exit code, stderr); called at most once.</param>
    /// <param name="commandTimeout">How long one command may wait for its reply.</param>
    internal QtestClient(Socket socket, Func<string> describeDeath, TimeSpan commandTimeout)
    {
        _socket = socket;
        _describeDeath = describeDeath;
        CommandTimeout = commandTimeout;

        // A QEMU that stops reading (stopped, hung) fills the socket buffer; without this a send would block forever.
        _socket.SendTimeout = (int)Math.Clamp(commandTimeout.TotalMilliseconds, 1, int.MaxValue);
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "qtest reader" };
        _reader.Start();
    }

    /// <summary>How long a command waits for its reply before the client declares QEMU unresponsive.</summary>
    public TimeSpan CommandTimeout { get; }

    /// <summary>What the intercepted interrupt lines belong to, for messages: "PLIC" (riscv64 virt) or "IOAPIC" (x86_64 q35).</summary>
    internal string InterruptControllerName { get; set; } = "PLIC";

    /// <summary>True once the connection broke, a reply timed out or the client was disposed: every command now throws.</summary>
    public bool IsFaulted => Volatile.Read(ref _fault) is not null;

    /// <summary><c>readb ADDR</c>: an 8-bit read of guest-physical memory.</summary>
    public byte ReadB(ulong address) => (byte)ReadValue("readb", address);

    /// <summary><c>readw ADDR</c>: a 16-bit read in the guest's byte order, returned in host order.</summary>
    public ushort ReadW(ulong address) => (ushort)ReadValue("readw", address);

    /// <summary><c>readl ADDR</c>: a 32-bit read in the guest's byte order, returned in host order.</summary>
    public uint ReadL(ulong address) => (uint)ReadValue("readl", address);

    /// <summary><c>readq ADDR</c>: a 64-bit read in the guest's byte order, returned in host order.</summary>
    public ulong ReadQ(ulong address) => ReadValue("readq", address);

    /// <summary><c>writeb ADDR VALUE</c>: an 8-bit write of guest-physical memory.</summary>
    public void WriteB(ulong address, byte value) => WriteValue("writeb", address, value);

    /// <summary><c>writew ADDR VALUE</c>: a 16-bit write in the guest's byte order.</summary>
    public void WriteW(ulong address, ushort value) => WriteValue("writew", address, value);

    /// <summary><c>writel ADDR VALUE</c>: a 32-bit write in the guest's byte order.</summary>
    public void WriteL(ulong address, uint value) => WriteValue("writel", address, value);

    /// <summary><c>writeq ADDR VALUE</c>: a 64-bit write in the guest's byte order.</summary>
    public void WriteQ(ulong address, ulong value) => WriteValue("writeq", address, value);

    // x86_64 q35: the CPU's I/O port space, for PCI configuration mechanism #1 and I/O BARs.

    /// <summary><c>inb PORT</c>: an 8-bit read of the guest's I/O port space (x86 <c>in al, dx</c>).</summary>
    public byte InB(ushort port) => (byte)ReadValue("inb", port);

    /// <summary><c>inw PORT</c>: a 16-bit read of the guest's I/O port space.</summary>
    public ushort InW(ushort port) => (ushort)ReadValue("inw", port);

    /// <summary><c>inl PORT</c>: a 32-bit read of the guest's I/O port space.</summary>
    public uint InL(ushort port) => (uint)ReadValue("inl", port);

    /// <summary><c>outb PORT VALUE</c>: an 8-bit write to the guest's I/O port space (x86 <c>out dx, al</c>).</summary>
    public void OutB(ushort port, byte value) => WriteValue("outb", port, value);

    /// <summary><c>outw PORT VALUE</c>: a 16-bit write to the guest's I/O port space.</summary>
    public void OutW(ushort port, ushort value) => WriteValue("outw", port, value);

    /// <summary><c>outl PORT VALUE</c>: a 32-bit write to the guest's I/O port space.</summary>
    public void OutL(ushort port, uint value) => WriteValue("outl", port, value);

    /// <summary>
    /// Reads <paramref name="destination"/>.Length bytes of guest-physical memory from <paramref name="address"/>
    /// (<c>b64read</c>, in pieces of at most 48 KiB). Guest RAM is faster to read through <see cref="GuestRam"/>.
    /// </summary>
    public void Read(ulong address, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int chunk = Math.Min(destination.Length, TransferChunk);
            string reply = ExecuteText(FormattableString.Invariant($"b64read 0x{address:x} {chunk}"));
            if (!Convert.TryFromBase64String(reply, destination[..chunk], out int written) || written != chunk)
            {
                throw new VirtioException(
                    VirtioErrorReason.PlatformFailure,
                    $"qtest b64read of {chunk} bytes at 0x{address:x} answered {reply.Length} characters that do not decode to {chunk} bytes.");
            }

            destination = destination[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <summary>
    /// Writes <paramref name="data"/> to guest-physical memory at <paramref name="address"/>
    /// (<c>b64write</c>, in pieces of at most 48 KiB).
    /// </summary>
    public void Write(ulong address, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            int chunk = Math.Min(data.Length, TransferChunk);
            ExecuteText(FormattableString.Invariant($"b64write 0x{address:x} {chunk} {Convert.ToBase64String(data[..chunk])}"));
            data = data[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <summary>
    /// <c>irq_intercept_in QOM-PATH</c>: from now on the input interrupt lines of that device (the PLIC) are reported
    /// to this client as <c>IRQ raise/lower N</c> instead of reaching the guest CPU. QEMU allows one intercepted
    /// device per process; repeating the same path is accepted.
    /// </summary>
    public void IrqInterceptIn(string qomPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(qomPath);
        if (qomPath.Any(char.IsWhiteSpace))
        {
            throw new ArgumentException($"QOM path '{qomPath}' contains white space.", nameof(qomPath));
        }

        ExecuteText("irq_intercept_in " + qomPath);
    }

    /// <summary>
    /// Sends one raw qtest command line and returns the text after <c>OK</c> (empty when there is none).
    /// For diagnostics: QEMU 7.2 aborts on a known command with missing arguments.
    /// </summary>
    /// <exception cref="VirtioException">On an <c>ERR</c>/<c>FAIL</c> reply, a timeout or a dead QEMU.</exception>
    public string Execute(string command)
    {
        ValidateRawCommand(command);
        return ExecuteText(command);
    }

    /// <summary>
    /// Sends all <paramref name="commands"/> before reading any reply (pipelining), then returns each reply's text
    /// after <c>OK</c>, in order. The first failed command throws once all replies are in.
    /// </summary>
    public IReadOnlyList<string> ExecuteBatch(IReadOnlyList<string> commands)
    {
        ArgumentNullException.ThrowIfNull(commands);
        foreach (string command in commands)
        {
            ValidateRawCommand(command);
        }

        var slots = new QtestPendingReply[commands.Count];
        lock (_sendLock)
        {
            for (int i = 0; i < slots.Length; i++)
            {
                slots[i] = Rent();
                slots[i].SetCommand(commands[i]);
                slots[i].WantsText = true;
                SendLocked(slots[i]);
            }
        }

        var replies = new string[slots.Length];
        QtestPendingReply? failed = null;
        for (int i = 0; i < slots.Length; i++)
        {
            Await(slots[i]);
            if (slots[i].Error is not null)
            {
                failed ??= slots[i];
                continue;
            }

            replies[i] = slots[i].Text ?? string.Empty;
        }

        if (failed is not null)
        {
            throw new VirtioException(failed.ErrorReason, failed.Error!);
        }

        foreach (QtestPendingReply slot in slots)
        {
            Return(slot);
        }

        return replies;
    }

    /// <summary>The line numbered <paramref name="number"/>, tracking <c>IRQ raise/lower</c> for it (interception must be on).</summary>
    internal QtestInterruptLine GetInterruptLine(int number)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(number);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(number, MaxInterruptLine);
        QtestInterruptLine? line = Volatile.Read(ref _lines[number]);
        if (line is null)
        {
            var created = new QtestInterruptLine(this, number);
            line = Interlocked.CompareExchange(ref _lines[number], created, null) ?? created;
        }

        return line;
    }

    /// <summary>Throws the exception that describes why the client can no longer be used, if it cannot.</summary>
    internal void ThrowIfFaulted()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string? fault = Volatile.Read(ref _fault);
        if (fault is not null)
        {
            throw new VirtioException(_faultReason, fault);
        }
    }

    /// <summary>Closes the connection and stops the reader thread. Commands in flight fail. Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Fault(VirtioErrorReason.PlatformFailure, "The QEMU machine was disposed.");
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already broken: the reader has seen it or will.
        }

        _socket.Dispose();
        if (Thread.CurrentThread != _reader)
        {
            _reader.Join(TimeSpan.FromSeconds(5));
        }
    }

    private static void ValidateRawCommand(string command)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(command);
        if (command.Contains('\n', StringComparison.Ordinal) || command.Contains('\r', StringComparison.Ordinal))
        {
            throw new ArgumentException("A qtest command is one line.", nameof(command));
        }
    }

    /// <summary><c>readq ADDR</c> with its own timeout: the first command after launch waits for QEMU to create the machine.</summary>
    internal ulong ReadQ(ulong address, TimeSpan timeout) => ReadValue("readq", address, timeout);

    private ulong ReadValue(string mnemonic, ulong address, TimeSpan? timeout = null)
    {
        QtestPendingReply slot = Rent();
        slot.CommandLength = Format(slot.Command, mnemonic, address, null);
        Run(slot, timeout);
        ulong value = slot.Value;
        Return(slot);
        return value;
    }

    private void WriteValue(string mnemonic, ulong address, ulong value)
    {
        QtestPendingReply slot = Rent();
        slot.CommandLength = Format(slot.Command, mnemonic, address, value);
        Run(slot);
        Return(slot);
    }

    // Formats "mnemonic 0xADDR[ 0xVALUE]\n" without allocating, piece by piece: the interpolated-string handler formats
    // numbers through a generic method whose unoptimized (tier-0) code boxes them, 24 bytes per number, and register
    // accesses run on a service's pump threads (kicks, interrupt acknowledgements) long before the runtime tiers that up
    // in a busy process.
    private static int Format(Span<byte> buffer, string mnemonic, ulong address, ulong? value)
    {
        int written = Encoding.ASCII.GetBytes(mnemonic, buffer);
        bool ok = AppendHex(buffer, ref written, address) && (value is not ulong v || AppendHex(buffer, ref written, v)) && written < buffer.Length;
        if (!ok)
        {
            throw new InvalidOperationException("A fixed-form qtest command did not fit its buffer.");
        }

        buffer[written++] = (byte)'\n';
        return written;
    }

    // Appends " 0x" and the number in lowercase hex; false when the buffer is too small.
    private static bool AppendHex(Span<byte> buffer, ref int written, ulong number)
    {
        if (!" 0x"u8.TryCopyTo(buffer[written..]) || !number.TryFormat(buffer[(written + 3)..], out int digits, "x", CultureInfo.InvariantCulture))
        {
            return false;
        }

        written += 3 + digits;
        return true;
    }

    private string ExecuteText(string command)
    {
        QtestPendingReply slot = Rent();
        slot.SetCommand(command);
        slot.WantsText = true;
        Run(slot);
        string text = slot.Text ?? string.Empty;
        Return(slot);
        return text;
    }

    // Sends the slot's command, waits for its reply and throws if it failed.
    private void Run(QtestPendingReply slot, TimeSpan? timeout = null)
    {
        lock (_sendLock)
        {
            SendLocked(slot);
        }

        Await(slot, timeout);
        if (slot.Error is not null)
        {
            throw new VirtioException(slot.ErrorReason, slot.Error);
        }
    }

    // Called with _sendLock held.
    private void SendLocked(QtestPendingReply slot)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_stateLock)
        {
            // Checked under the same lock Fault drains the queue under, so no slot is queued after the drain.
            // Queued before the bytes leave, so that the reader, which may see the reply before Send returns, finds it.
            if (_fault is null)
            {
                _pending.Enqueue(slot);
            }
        }

        ThrowIfFaulted();
        try
        {
            ReadOnlySpan<byte> bytes = slot.Command.AsSpan(0, slot.CommandLength);
            while (!bytes.IsEmpty)
            {
                bytes = bytes[_socket.Send(bytes, SocketFlags.None)..];
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
        {
            // Fault completes this slot too, as it is in _pending.
            Fault(
                VirtioErrorReason.Timeout,
                $"qtest command '{slot.CommandText}' could not be sent within {CommandTimeout.TotalSeconds:0.#} s: QEMU stopped reading its socket.");
            ThrowIfFaulted();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Fault(VirtioErrorReason.PlatformFailure, ExplainBrokenConnection());
            ThrowIfFaulted();
        }
    }

    private void Await(QtestPendingReply slot, TimeSpan? timeout = null)
    {
        TimeSpan limit = timeout ?? CommandTimeout;
        if (slot.Done.Wait(limit))
        {
            return;
        }

        // The reply may still come, but then it would be taken for the next command's: the stream is lost for good.
        Fault(
            VirtioErrorReason.Timeout,
            $"qtest command '{slot.CommandText}' got no reply within {limit.TotalSeconds:0.#} s; QEMU is unresponsive.");
        slot.Done.Wait(TimeSpan.FromSeconds(1));
        if (slot.Error is null)
        {
            slot.Error = _fault;
            slot.ErrorReason = VirtioErrorReason.Timeout;
        }
    }

    private QtestPendingReply Rent()
    {
        lock (_stateLock)
        {
            return _pool.TryPop(out QtestPendingReply? slot) ? slot : new QtestPendingReply();
        }
    }

    private void Return(QtestPendingReply slot)
    {
        slot.Reset();
        lock (_stateLock)
        {
            _pool.Push(slot);
        }
    }

    private string ExplainBrokenConnection() =>
        _disposed ? "The QEMU machine was disposed." : _describeDeath();

    // Records the first fault, fails everything in flight and wakes every waiter on an interrupt line.
    private void Fault(VirtioErrorReason reason, string message)
    {
        QtestPendingReply[] inFlight;
        lock (_stateLock)
        {
            if (_fault is not null)
            {
                return;
            }

            _faultReason = reason;
            Volatile.Write(ref _fault, message);
            inFlight = [.. _pending];
            _pending.Clear();
        }

        foreach (QtestPendingReply slot in inFlight)
        {
            slot.Error = message;
            slot.ErrorReason = reason;
            slot.Done.Set();
        }

        foreach (QtestInterruptLine? line in _lines)
        {
            line?.WakeForFault();
        }
    }

    private void ReadLoop()
    {
        byte[] buffer = new byte[64 * 1024];
        int start = 0;
        int end = 0;
        try
        {
            while (true)
            {
                if (end == buffer.Length)
                {
                    if (start > 0)
                    {
                        buffer.AsSpan(start, end - start).CopyTo(buffer);
                        end -= start;
                        start = 0;
                    }
                    else if (buffer.Length >= MaxLineLength)
                    {
                        Fault(VirtioErrorReason.PlatformFailure, $"QEMU sent a qtest line longer than {MaxLineLength} bytes; the stream is corrupt.");
                        return;
                    }
                    else
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }
                }

                int received = _socket.Receive(buffer.AsSpan(end), SocketFlags.None);
                if (received == 0)
                {
                    Fault(VirtioErrorReason.PlatformFailure, ExplainBrokenConnection());
                    return;
                }

                end += received;
                int newline;
                while ((newline = buffer.AsSpan(start, end - start).IndexOf((byte)'\n')) >= 0)
                {
                    if (!HandleLine(buffer.AsSpan(start, newline)))
                    {
                        return;
                    }

                    start += newline + 1;
                }

                if (start == end)
                {
                    start = end = 0;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Fault(VirtioErrorReason.PlatformFailure, ExplainBrokenConnection());
        }
    }

    // Returns false when the stream can no longer be trusted (the client is faulted then).
    private bool HandleLine(ReadOnlySpan<byte> line)
    {
        line = line.TrimEnd((byte)'\r');
        if (line.IsEmpty)
        {
            return true;
        }

        if (line.StartsWith("IRQ "u8))
        {
            return HandleIrq(line);
        }

        QtestPendingReply? slot;
        lock (_stateLock)
        {
            _pending.TryDequeue(out slot);
        }

        if (slot is null)
        {
            Fault(VirtioErrorReason.PlatformFailure, $"QEMU sent a qtest reply no command asked for: '{Encoding.UTF8.GetString(line)}'.");
            return false;
        }

        if (line.SequenceEqual("OK"u8) || line.StartsWith("OK "u8))
        {
            ReadOnlySpan<byte> payload = line.Length > 3 ? line[3..] : [];
            if (slot.WantsText)
            {
                slot.Text = Encoding.UTF8.GetString(payload);
            }
            else if (payload.StartsWith("0x"u8)
                && ulong.TryParse(payload[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong value))
            {
                slot.Value = value;
            }
        }
        else
        {
            // ERR and FAIL both mean this command failed; the connection stays usable.
            slot.Error = $"qtest command '{slot.CommandText}' failed: {Encoding.UTF8.GetString(line)}";
            slot.ErrorReason = VirtioErrorReason.PlatformFailure;
        }

        slot.Done.Set();
        return true;
    }

    private bool HandleIrq(ReadOnlySpan<byte> line)
    {
        bool raise = line.StartsWith("IRQ raise "u8);
        bool lower = line.StartsWith("IRQ lower "u8);
        if ((!raise && !lower)
            || !int.TryParse(line["IRQ raise ".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int number))
        {
            Fault(VirtioErrorReason.PlatformFailure, $"QEMU sent an IRQ line this client cannot read: '{Encoding.UTF8.GetString(line)}'.");
            return false;
        }

        if (number > MaxInterruptLine)
        {
            // Beyond any PLIC source: not a line anyone can open, so nothing to track.
            return true;
        }

        QtestInterruptLine target = GetInterruptLine(number);
        if (raise)
        {
            target.OnRaise();
        }
        else
        {
            target.OnLower();
        }

        return true;
    }
}
