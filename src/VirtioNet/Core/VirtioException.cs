namespace VirtioNet.Core;

/// <summary>
/// A failure of the driver, its device or the platform beneath it. The message says what failed and why;
/// <see cref="Reason"/> lets callers react without parsing it.
/// </summary>
public class VirtioException : Exception
{
    /// <summary>Creates an exception with a reason and a message.</summary>
    public VirtioException(VirtioErrorReason reason, string message)
        : base(message) => Reason = reason;

    /// <summary>Creates an exception with a reason, a message and the exception that caused it.</summary>
    public VirtioException(VirtioErrorReason reason, string message, Exception innerException)
        : base(message, innerException) => Reason = reason;

    /// <summary>Creates an exception with the <see cref="VirtioErrorReason.PlatformFailure"/> reason.</summary>
    public VirtioException()
        : this(VirtioErrorReason.PlatformFailure, "A virtio operation failed.")
    {
    }

    /// <summary>Creates an exception with the <see cref="VirtioErrorReason.PlatformFailure"/> reason.</summary>
    public VirtioException(string message)
        : this(VirtioErrorReason.PlatformFailure, message)
    {
    }

    /// <summary>Creates an exception with the <see cref="VirtioErrorReason.PlatformFailure"/> reason.</summary>
    public VirtioException(string message, Exception innerException)
        : this(VirtioErrorReason.PlatformFailure, message, innerException)
    {
    }

    /// <summary>Why the operation failed.</summary>
    public VirtioErrorReason Reason { get; }
}
