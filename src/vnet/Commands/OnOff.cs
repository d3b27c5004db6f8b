using System.Globalization;
using System.Net.NetworkInformation;

namespace VirtioNet.Cli.Commands;

/// <summary>Value parsing shared by the ethtool/ip-like commands; every bad value is one <see cref="CliException"/> line.</summary>
internal static class OnOff
{
    /// <summary>"on" or "off" (as ethtool and ip take them), for <paramref name="option"/>.</summary>
    public static bool Parse(string value, string option) => value switch
    {
        "on" => true,
        "off" => false,
        _ => throw new CliException($"{option} takes on or off; got '{value}'."),
    };

    /// <summary>"NAME=on|off" pairs, e.g. for --set rx-checksum=off.</summary>
    public static (string Name, bool On) ParseSetting(string text, string option)
    {
        int equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0)
        {
            throw new CliException($"{option} takes NAME=on|off; got '{text}'.");
        }

        return (text[..equals], Parse(text[(equals + 1)..], $"{option} {text[..equals]}"));
    }

    /// <summary>A MAC address written 52:54:00:12:34:56 (or with dashes).</summary>
    public static PhysicalAddress ParseMac(string text, string option)
    {
        string[] parts = text.Split(':', '-');
        if (parts.Length != 6 || parts.Any(p => p.Length != 2 || !byte.TryParse(p, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out _)))
        {
            throw new CliException($"{option} takes a MAC address such as 52:54:00:12:34:56; got '{text}'.");
        }

        return new PhysicalAddress([.. parts.Select(p => byte.Parse(p, NumberStyles.HexNumber, CultureInfo.InvariantCulture))]);
    }

    /// <summary>Hex bytes, optionally separated by colons (ethtool's "6d:5a:56:..." key form).</summary>
    public static byte[] ParseHex(string text, string option)
    {
        string digits = text.Replace(":", string.Empty, StringComparison.Ordinal);
        if (digits.Length == 0 || digits.Length % 2 != 0 || !digits.All(Uri.IsHexDigit))
        {
            throw new CliException($"{option} takes hex bytes such as 6d:5a:56:da; got '{text}'.");
        }

        return Convert.FromHexString(digits);
    }
}
