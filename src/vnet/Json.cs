using System.Globalization;
using System.Text.Json;

namespace VirtioNet.Cli;

/// <summary>JSON output conventions shared by the commands.</summary>
internal static class Json
{
    public static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    /// <summary>"52:54:00:12:34:56", the form ip and ethtool print.</summary>
    public static string FormatMac(ReadOnlySpan<byte> mac) =>
        string.Join(':', mac.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
}
