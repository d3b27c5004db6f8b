using System.Text;

namespace VirtioNet.Qemu;

/// <summary>
/// One qtest command in flight: its text, and the reply the reader thread fills in. Pooled by
/// <see cref="QtestClient"/> so that register reads and writes allocate nothing.
/// </summary>
internal sealed class QtestPendingReply : IDisposable
{
    /// <summary>Large enough for every fixed-form command (a mnemonic and two 64-bit hex numbers).</summary>
    private const int InitialCommandCapacity = 128;

    /// <summary>Set by the reader thread once the reply (or a failure) is in.</summary>
    public ManualResetEventSlim Done { get; } = new(false);

    /// <summary>The command line in UTF-8, ending in a newline; grown for long commands.</summary>
    public byte[] Command { get; private set; } = new byte[InitialCommandCapacity];

    /// <summary>How many bytes of <see cref="Command"/> are the command.</summary>
    public int CommandLength { get; set; }

    /// <summary>True when the caller wants the reply's text (b64read, raw commands) rather than a number.</summary>
    public bool WantsText { get; set; }

    /// <summary>The number after <c>OK</c>, for read commands.</summary>
    public ulong Value { get; set; }

    /// <summary>The text after <c>OK</c>, when <see cref="WantsText"/> is set.</summary>
    public string? Text { get; set; }

    /// <summary>Why the command failed (an <c>ERR</c>/<c>FAIL</c> reply, or a dead connection); null on success.</summary>
    public string? Error { get; set; }

    /// <summary>The reason to report with <see cref="Error"/>.</summary>
    public VirtioErrorReason ErrorReason { get; set; }

    /// <summary>The command for messages, without its newline.</summary>
    public string CommandText => Encoding.UTF8.GetString(Command, 0, Math.Max(0, CommandLength - 1));

    /// <summary>Copies <paramref name="command"/> and a newline into <see cref="Command"/>.</summary>
    public void SetCommand(string command)
    {
        int length = Encoding.UTF8.GetByteCount(command) + 1;
        if (Command.Length < length)
        {
            Command = new byte[length];
        }

        Encoding.UTF8.GetBytes(command, Command);
        Command[length - 1] = (byte)'\n';
        CommandLength = length;
    }

    /// <summary>Clears the reply fields so the slot can carry the next command.</summary>
    public void Reset()
    {
        Done.Reset();
        CommandLength = 0;
        WantsText = false;
        Value = 0;
        Text = null;
        Error = null;
        ErrorReason = VirtioErrorReason.PlatformFailure;
        if (Command.Length > 4 * InitialCommandCapacity)
        {
            Command = new byte[InitialCommandCapacity];
        }
    }

    /// <inheritdoc />
    public void Dispose() => Done.Dispose();
}
