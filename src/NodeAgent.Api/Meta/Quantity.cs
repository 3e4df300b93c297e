using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NodeAgent.Api.Meta;

/// <summary>
/// resource.Quantity: "500m", "1.5", "128Mi", "1e3". Kept as the text the user wrote (so a round
/// trip is exact) and parsed on demand. Grammar and suffixes follow apimachinery's quantity.go:
/// binary SI (Ki..Ei), decimal SI (n, u, m, "", k, M, G, T, P, E) and decimal exponents (e3, E-2).
/// </summary>
[JsonConverter(typeof(QuantityConverter))]
public readonly record struct Quantity(string Text)
{
    public static Quantity FromMilli(long milli) =>
        new(milli % 1000 == 0 ? (milli / 1000).ToString(CultureInfo.InvariantCulture) : milli.ToString(CultureInfo.InvariantCulture) + "m");

    public static Quantity FromBytes(long bytes) => new(bytes.ToString(CultureInfo.InvariantCulture));

    public static bool TryParse(string? text, out decimal value) => TryParse(text.AsSpan(), out value);

    public static bool TryParse(ReadOnlySpan<char> s, out decimal value)
    {
        value = 0;
        if (s.IsEmpty) return false;
        int i = 0;
        if (s[0] is '+' or '-') i++;
        int digitsStart = i;
        bool dot = false;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || (s[i] == '.' && !dot)))
        {
            if (s[i] == '.') dot = true;
            i++;
        }
        if (i == digitsStart || (i - digitsStart == 1 && dot)) return false;
        if (!decimal.TryParse(s[..i], NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            return false;
        ReadOnlySpan<char> suffix = s[i..];
        decimal multiplier;
        switch (suffix)
        {
            case "": multiplier = 1m; break;
            case "Ki": multiplier = 1024m; break;
            case "Mi": multiplier = 1024m * 1024; break;
            case "Gi": multiplier = 1024m * 1024 * 1024; break;
            case "Ti": multiplier = 1024m * 1024 * 1024 * 1024; break;
            case "Pi": multiplier = 1024m * 1024 * 1024 * 1024 * 1024; break;
            case "Ei": multiplier = 1024m * 1024 * 1024 * 1024 * 1024 * 1024; break;
            case "n": multiplier = 0.000000001m; break;
            case "u": multiplier = 0.000001m; break;
            case "m": multiplier = 0.001m; break;
            case "k": multiplier = 1e3m; break;
            case "M": multiplier = 1e6m; break;
            case "G": multiplier = 1e9m; break;
            case "T": multiplier = 1e12m; break;
            case "P": multiplier = 1e15m; break;
            case "E": multiplier = 1e18m; break;
            default:
                if (suffix.Length >= 2 && suffix[0] is 'e' or 'E' &&
                    int.TryParse(suffix[1..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int exp) &&
                    exp is >= -18 and <= 18)
                {
                    multiplier = 1m;
                    for (int k = 0; k < Math.Abs(exp); k++) multiplier *= 10m;
                    if (exp < 0) multiplier = 1m / multiplier;
                    break;
                }
                return false;
        }
        try { value = number * multiplier; }
        catch (OverflowException) { return false; }
        return true;
    }

    public bool IsValid => TryParse(Text, out _);

    public decimal Value => TryParse(Text, out var v) ? v : throw new FormatException($"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': \"{Text}\"");

    /// <summary>Whole units, rounded up (as Quantity.Value() does).</summary>
    public long ToLong() => (long)Math.Ceiling(Value);

    /// <summary>Thousandths, rounded up (as Quantity.MilliValue() does): CPU in millicores.</summary>
    public long ToMilli() => (long)Math.Ceiling(Value * 1000m);

    public override string ToString() => Text;
}

public sealed class QuantityConverter : JsonConverter<Quantity>
{
    public override Quantity Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.String => new Quantity(reader.GetString()!),
            // YAML `cpu: 1` arrives as a JSON number: keep its exact text.
            JsonTokenType.Number => new Quantity(Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan)),
            _ => throw new JsonException("a quantity must be a string or a number"),
        };

    public override void Write(Utf8JsonWriter writer, Quantity value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Text);
}
