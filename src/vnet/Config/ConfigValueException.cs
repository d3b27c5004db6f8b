namespace VirtioNet.Cli.Config;

/// <summary>A configuration value of the wrong type or out of range; the reader turns it into a <see cref="ConfigError"/> at the value.</summary>
internal sealed class ConfigValueException : Exception
{
    public ConfigValueException(string message)
        : base(message)
    {
    }

    public ConfigValueException()
    {
    }

    public ConfigValueException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
