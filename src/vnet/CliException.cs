namespace VirtioNet.Cli;

/// <summary>A failure the user caused or can fix (bad option value, nothing to drive); printed as one line, exit code 2.</summary>
internal sealed class CliException : Exception
{
    public CliException(string message)
        : base(message)
    {
    }

    public CliException()
    {
    }

    public CliException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
