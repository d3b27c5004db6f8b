using System.Runtime.CompilerServices;

namespace VirtioNet.Diagnostics;

/// <summary>
/// The checks the option types make when a value is set, so that a bad value fails where it is given (each returns the
/// value it checked, for a property's <c>init</c>). One home for them instead of a copy in every option type.
/// </summary>
internal static class OptionChecks
{
    /// <summary>A count of tries: at least one.</summary>
    public static int AtLeastOne(int value, [CallerArgumentExpression(nameof(value))] string? name = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, name);
        return value;
    }

    /// <summary>A wait that must take some time.</summary>
    public static TimeSpan Positive(TimeSpan value, [CallerArgumentExpression(nameof(value))] string? name = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero, name);
        return value;
    }

    /// <summary>A wait that may be zero.</summary>
    public static TimeSpan NotNegative(TimeSpan value, [CallerArgumentExpression(nameof(value))] string? name = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero, name);
        return value;
    }

    /// <summary>A whole number within [<paramref name="minimum"/>, <paramref name="maximum"/>].</summary>
    public static int InRange(int value, int minimum, int maximum, [CallerArgumentExpression(nameof(value))] string? name = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(value, minimum, name);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value, maximum, name);
        return value;
    }
}
