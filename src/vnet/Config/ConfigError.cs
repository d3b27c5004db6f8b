namespace VirtioNet.Cli.Config;

/// <summary>One fault in a configuration file, where it is (1-based line and column) and what is wrong, as one line.</summary>
/// <param name="File">The file's path as given.</param>
/// <param name="Line">The line, from 1.</param>
/// <param name="Column">The column, from 1.</param>
/// <param name="Message">What is wrong, one sentence.</param>
internal sealed record ConfigError(string File, int Line, int Column, string Message)
{
    /// <summary>FILE:LINE:COLUMN: MESSAGE, the form compilers use, so editors can jump to it.</summary>
    public override string ToString() => FormattableString.Invariant($"{File}:{Line}:{Column}: {Message}");
}
