using System.Globalization;
using Tomlyn.Syntax;

namespace VirtioNet.Cli.Config;

/// <summary>
/// One key's value in a configuration file, read as the key's type. A value of the wrong type or out of range throws
/// <see cref="ConfigValueException"/> with a sentence naming the key; the reader adds where it is.
/// </summary>
internal sealed class ConfigValue
{
    private readonly ValueSyntax _syntax;

    public ConfigValue(string key, ValueSyntax syntax)
    {
        Key = key;
        _syntax = syntax;
    }

    /// <summary>[section] name, for messages.</summary>
    public string Key { get; }

    /// <summary>A string.</summary>
    public string String() => _syntax is StringValueSyntax s ? s.Value ?? string.Empty : throw WrongType("a string");

    /// <summary>One of <paramref name="choices"/>.</summary>
    public string Choice(params string[] choices)
    {
        string value = String();
        return choices.Contains(value, StringComparer.Ordinal)
            ? value
            : throw new ConfigValueException($"{Key} takes {string.Join(", ", choices.Select(c => $"\"{c}\""))}; got \"{value}\"");
    }

    /// <summary>true or false.</summary>
    public bool Boolean() => _syntax is BooleanValueSyntax b ? b.Value : throw WrongType("true or false");

    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/>.</summary>
    public long Integer(long min, long max)
    {
        long value = _syntax is IntegerValueSyntax i ? i.Value : throw WrongType("a whole number");
        return value >= min && value <= max
            ? value
            : throw new ConfigValueException(string.Create(CultureInfo.InvariantCulture, $"{Key} must be {min} to {max}; got {value}"));
    }

    /// <summary>An array of strings.</summary>
    public IReadOnlyList<string> Strings() =>
        [.. Items("an array of strings").Select(v => v is StringValueSyntax s ? s.Value ?? string.Empty : throw WrongType("an array of strings"))];

    /// <summary>An array of whole numbers, each from <paramref name="min"/> to <paramref name="max"/>.</summary>
    public IReadOnlyList<int> Integers(int min, int max) =>
        [.. Items("an array of whole numbers").Select(v => v is IntegerValueSyntax i
            ? i.Value >= min && i.Value <= max ? (int)i.Value : throw new ConfigValueException(string.Create(CultureInfo.InvariantCulture, $"{Key}: every entry must be {min} to {max}; got {i.Value}"))
            : throw WrongType("an array of whole numbers"))];

    /// <summary>An inline table of names and booleans.</summary>
    public IReadOnlyList<(string Name, bool On)> Switches()
    {
        if (_syntax is not InlineTableSyntax table)
        {
            throw WrongType("an inline table of names and true/false, such as { tx-checksumming = false }");
        }

        return [.. table.Items.Select(item => item.KeyValue).Select(kv => (ConfigReader.KeyText(kv?.Key), kv?.Value is BooleanValueSyntax b ? b.Value : throw new ConfigValueException($"{Key}.{ConfigReader.KeyText(kv?.Key)} takes true or false")))];
    }

    private IEnumerable<ValueSyntax?> Items(string what) =>
        _syntax is ArraySyntax array ? array.Items.Select(i => i.Value) : throw WrongType(what);

    private ConfigValueException WrongType(string expected) => new($"{Key} takes {expected}; got {Describe(_syntax)}");

    private static string Describe(ValueSyntax syntax) => syntax switch
    {
        StringValueSyntax => "a string",
        IntegerValueSyntax => "a whole number",
        FloatValueSyntax => "a number with a fraction",
        BooleanValueSyntax => "true or false",
        ArraySyntax => "an array",
        InlineTableSyntax => "an inline table",
        _ => "a date or time",
    };
}
