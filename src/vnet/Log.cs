namespace VirtioNet.Cli;

/// <summary>Diagnostics on stderr, so stdout carries only data.</summary>
internal static class Log
{
    private static readonly bool DebugEnabled = Environment.GetEnvironmentVariable("VNET_DEBUG") == "1";

    public static void Info(string message) => Console.Error.WriteLine($"vnet: {message}");

    public static void Error(string message) => Console.Error.WriteLine($"vnet: error: {message}");

    public static void Debug(Exception e)
    {
        if (DebugEnabled)
        {
            Console.Error.WriteLine(e);
        }
    }
}
