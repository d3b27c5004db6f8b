namespace VirtioNet.Diagnostics;

/// <summary>
/// A failure of the diagnostic client: a peer that did not answer or refused. The message says what failed and
/// why; <see cref="Reason"/> lets callers (the CLI's exit code) react without parsing it.
/// </summary>
public class DiagnosticsException : Exception
{
    /// <summary>Creates an exception with a reason and a message.</summary>
    public DiagnosticsException(DiagnosticsErrorReason reason, string message)
        : base(message) => Reason = reason;

    /// <summary>Creates an exception with a reason, a message and the exception that caused it.</summary>
    public DiagnosticsException(DiagnosticsErrorReason reason, string message, Exception innerException)
        : base(message, innerException) => Reason = reason;

    /// <summary>Creates an exception with the <see cref="DiagnosticsErrorReason.NotConfigured"/> reason.</summary>
    public DiagnosticsException()
        : this(DiagnosticsErrorReason.NotConfigured, "A network diagnostic failed.")
    {
    }

    /// <summary>Creates an exception with the <see cref="DiagnosticsErrorReason.NotConfigured"/> reason.</summary>
    public DiagnosticsException(string message)
        : this(DiagnosticsErrorReason.NotConfigured, message)
    {
    }

    /// <summary>Creates an exception with the <see cref="DiagnosticsErrorReason.NotConfigured"/> reason.</summary>
    public DiagnosticsException(string message, Exception innerException)
        : this(DiagnosticsErrorReason.NotConfigured, message, innerException)
    {
    }

    /// <summary>Why the operation failed.</summary>
    public DiagnosticsErrorReason Reason { get; }
}
