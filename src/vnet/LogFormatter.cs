using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace VirtioNet.Cli;

/// <summary>
/// One line per message in the tool's form: <c>vnet: MESSAGE</c>, <c>vnet: warning: MESSAGE</c>, <c>vnet: error:
/// MESSAGE</c> (what scripts and the tests look for), <c>vnet: debug: MESSAGE</c>; an exception (debug level) follows
/// with its stack trace.
/// </summary>
internal sealed class LogFormatter : ConsoleFormatter
{
    public const string FormatterName = "vnet";

    public LogFormatter()
        : base(FormatterName)
    {
    }

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        string message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        string prefix = logEntry.LogLevel switch
        {
            LogLevel.Trace => "trace: ",
            LogLevel.Debug => "debug: ",
            LogLevel.Warning => "warning: ",
            LogLevel.Error or LogLevel.Critical => "error: ",
            _ => string.Empty,
        };
        textWriter.Write("vnet: ");
        textWriter.Write(prefix);
        textWriter.Write(message);
        textWriter.Write('\n');
        if (logEntry.Exception is { } exception)
        {
            textWriter.Write(exception.ToString());
            textWriter.Write('\n');
        }
    }
}
