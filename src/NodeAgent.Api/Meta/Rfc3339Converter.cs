using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NodeAgent.Api.Meta;

/// <summary>
/// metav1.Time: RFC 3339 in UTC with a 'Z' and whole seconds, as the apiserver writes it
/// ("2006-01-02T15:04:05Z"). Reading accepts any RFC 3339 offset and fractional seconds.
/// </summary>
public sealed class Rfc3339Converter : JsonConverter<DateTimeOffset?>
{
    public override bool HandleNull => true;

    public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null) return null;
        if (reader.TokenType != JsonTokenType.String) throw new JsonException("time must be an RFC 3339 string");
        if (reader.TryGetDateTimeOffset(out var value)) return value;
        var s = reader.GetString();
        if (DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out value)) return value;
        throw new JsonException($"invalid RFC 3339 time \"{s}\"");
    }

    public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options)
    {
        if (value is null) { writer.WriteNullValue(); return; }
        Span<char> buf = stackalloc char[20];
        value.Value.UtcDateTime.TryFormat(buf, out int n, "yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        writer.WriteStringValue(buf[..n]);
    }
}
