namespace VirtioNet.Service;

/// <summary>
/// A failure of the service that the user can read and act on (a name taken, a namespace missing, no /dev/net/tun):
/// one sentence, printed as one line by the tool.
/// </summary>
internal sealed class ServiceException : Exception
{
    public ServiceException(string message, int errno = 0)
        : base(message) => Errno = errno;

    public ServiceException()
    {
    }

    public ServiceException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The errno behind the failure, or 0.</summary>
    public int Errno { get; }
}
