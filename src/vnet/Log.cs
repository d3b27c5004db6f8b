using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace VirtioNet.Cli;

/// <summary>
/// The tool's diagnostics, through Microsoft.Extensions.Logging's console logger on stderr (stdout carries only data),
/// one line each in the tool's own form (<see cref="LogFormatter"/>). The level comes from <c>--log-level</c>, or the
/// configuration file's <c>[debug] log_level</c>; VNET_DEBUG=1 means debug (and exceptions with their stack traces).
/// </summary>
internal static partial class Log
{
    private static readonly object Gate = new();
    private static ILoggerFactory _factory = Create(DefaultLevel);
    private static ILogger _logger = _factory.CreateLogger("vnet");

    /// <summary>The level without <c>--log-level</c>: information, or debug with VNET_DEBUG=1.</summary>
    public static LogLevel DefaultLevel => Environment.GetEnvironmentVariable("VNET_DEBUG") == "1" ? LogLevel.Debug : LogLevel.Information;

    /// <summary>The level in force.</summary>
    public static LogLevel Level { get; private set; } = DefaultLevel;

    /// <summary>The names <c>--log-level</c> and <c>log_level</c> take, each with its level.</summary>
    public static IReadOnlyDictionary<string, LogLevel> Levels { get; } = new Dictionary<string, LogLevel>(StringComparer.Ordinal)
    {
        ["trace"] = LogLevel.Trace,
        ["debug"] = LogLevel.Debug,
        ["information"] = LogLevel.Information,
        ["warning"] = LogLevel.Warning,
        ["error"] = LogLevel.Error,
        ["critical"] = LogLevel.Critical,
        ["none"] = LogLevel.None,
    };

    /// <summary>Logs from now on at <paramref name="level"/> and above; what was logged before is written out first.</summary>
    public static void Configure(LogLevel level)
    {
        lock (Gate)
        {
            if (level == Level)
            {
                return;
            }

            ILoggerFactory old = _factory;
            _factory = Create(level);
            _logger = _factory.CreateLogger("vnet");
            Level = level;
            old.Dispose();
        }
    }

    /// <summary>Writes out what is queued; call before the process exits.</summary>
    public static void Flush()
    {
        lock (Gate)
        {
            _factory.Dispose();
            _factory = Create(Level);
            _logger = _factory.CreateLogger("vnet");
        }
    }

    public static void Info(string message) => Information(_logger, message);

    public static void Warning(string message) => Warn(_logger, message);

    public static void Error(string message) => Fail(_logger, message);

    public static void Debug(Exception e) => Details(_logger, e);

    // The formatter is registered as a service, not with AddConsoleFormatter<TFormatter, TOptions>: that one binds its
    // options from configuration by reflection, which NativeAOT refuses, and this formatter has no options to bind.
    private static ILoggerFactory Create(LogLevel level) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(level).AddConsole(options =>
        {
            options.FormatterName = LogFormatter.FormatterName;
            options.LogToStandardErrorThreshold = LogLevel.Trace;
        });
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ConsoleFormatter, LogFormatter>());
    });

    [LoggerMessage(Level = LogLevel.Information, Message = "{Message}")]
    private static partial void Information(ILogger logger, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Message}")]
    private static partial void Warn(ILogger logger, string message);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Message}")]
    private static partial void Fail(ILogger logger, string message);

    [LoggerMessage(Level = LogLevel.Debug, Message = "the failure in full:")]
    private static partial void Details(ILogger logger, Exception exception);
}
