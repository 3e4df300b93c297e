using System.Buffers;
using System.Globalization;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace NodeAgent.Api.Serialization;

/// <summary>
/// Turns a YAML stream into one JSON document per YAML document, the way sigs.k8s.io/yaml feeds
/// YAML to the JSON decoders: plain scalars become null, booleans and numbers where they look like
/// one (YAML 1.2 core schema, plus 1.1 leading-zero octal so `defaultMode: 0644` means 420 as
/// kubectl reads it); quoted scalars stay strings. YamlDotNet supplies only the tokenizer, so no
/// reflection is involved and it stays native-AOT safe.
/// </summary>
public static class YamlToJson
{
    /// <summary>Converts every non-empty document. Throws <see cref="ManifestException"/> with a line number on bad YAML.</summary>
    public static List<byte[]> Convert(string yaml)
    {
        var docs = new List<byte[]>();
        var parser = new Parser(new StringReader(yaml));
        var buffer = new ArrayBufferWriter<byte>(1024);
        try
        {
            parser.Consume<StreamStart>();
            while (parser.TryConsume<DocumentStart>(out _))
            {
                buffer.ResetWrittenCount();
                bool empty;
                using (var writer = new Utf8JsonWriter(buffer))
                {
                    empty = parser.Accept<DocumentEnd>(out _);
                    if (!empty) WriteNode(parser, writer);
                }
                parser.Consume<DocumentEnd>();
                if (!empty && !(buffer.WrittenCount == 4 && buffer.WrittenSpan.SequenceEqual("null"u8)))
                    docs.Add(buffer.WrittenSpan.ToArray());
            }
            parser.Consume<StreamEnd>();
        }
        catch (YamlException e)
        {
            throw new ManifestException($"invalid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // The parser gives up without a YamlException on some unterminated flow collections.
            var at = parser.Current?.End;
            throw new ManifestException($"invalid YAML at line {at?.Line ?? 0}, column {at?.Column ?? 0}: unexpected end of a flow collection or document", e);
        }
        return docs;
    }

    private static void WriteNode(IParser parser, Utf8JsonWriter w)
    {
        if (parser.TryConsume<Scalar>(out var scalar))
        {
            WriteScalar(scalar, w);
        }
        else if (parser.TryConsume<SequenceStart>(out _))
        {
            w.WriteStartArray();
            while (!parser.TryConsume<SequenceEnd>(out _)) WriteNode(parser, w);
            w.WriteEndArray();
        }
        else if (parser.TryConsume<MappingStart>(out _))
        {
            w.WriteStartObject();
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                if (!parser.TryConsume<Scalar>(out var key))
                    throw new ManifestException($"invalid YAML at line {parser.Current?.Start.Line}: mapping keys must be scalars");
                w.WritePropertyName(key.Value);
                WriteNode(parser, w);
            }
            w.WriteEndObject();
        }
        else if (parser.Current is AnchorAlias alias)
        {
            throw new ManifestException($"invalid YAML at line {alias.Start.Line}: aliases (*{alias.Value}) are not supported in manifests");
        }
        else
        {
            throw new ManifestException($"invalid YAML at line {parser.Current?.Start.Line}: unexpected {parser.Current?.GetType().Name}");
        }
    }

    private static void WriteScalar(Scalar s, Utf8JsonWriter w)
    {
        string v = s.Value;
        if (s.Style != ScalarStyle.Plain || (!s.Tag.IsEmpty && !s.Tag.IsNonSpecific && s.Tag.Value == "tag:yaml.org,2002:str")) { w.WriteStringValue(v); return; }
        switch (v)
        {
            case "" or "~" or "null" or "Null" or "NULL": w.WriteNullValue(); return;
            case "true" or "True" or "TRUE": w.WriteBooleanValue(true); return;
            case "false" or "False" or "FALSE": w.WriteBooleanValue(false); return;
        }
        if (TryInteger(v, out long l)) { w.WriteNumberValue(l); return; }
        if (LooksLikeFloat(v) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d))
        {
            // Keep the user's digits: "1.50" stays 1.50, so quantities round-trip exactly.
            w.WriteRawValue(v.StartsWith('+') ? v[1..] : v.StartsWith('.') ? "0" + v : v.StartsWith("-.") ? "-0" + v[1..] : v);
            return;
        }
        w.WriteStringValue(v);
    }

    private static bool TryInteger(string v, out long value)
    {
        value = 0;
        ReadOnlySpan<char> s = v;
        bool neg = false;
        if (s.Length > 0 && s[0] is '+' or '-') { neg = s[0] == '-'; s = s[1..]; }
        if (s.Length == 0) return false;
        bool ok;
        if (s.StartsWith("0x")) ok = long.TryParse(s[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        else if (s.StartsWith("0o")) ok = TryOctal(s[2..], out value);
        else if (s.Length > 1 && s[0] == '0') ok = TryOctal(s[1..], out value);
        else
        {
            foreach (char c in s) if (!char.IsAsciiDigit(c)) return false;
            ok = long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        }
        if (ok && neg) value = -value;
        return ok;
    }

    private static bool TryOctal(ReadOnlySpan<char> s, out long value)
    {
        value = 0;
        if (s.Length == 0 || s.Length > 21) return false;
        foreach (char c in s)
        {
            if (c is < '0' or > '7') return false;
            value = value * 8 + (c - '0');
        }
        return true;
    }

    private static bool LooksLikeFloat(string v)
    {
        // YAML 1.2 core: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        int i = 0;
        if (i < v.Length && v[i] is '+' or '-') i++;
        int digits = 0;
        while (i < v.Length && char.IsAsciiDigit(v[i])) { i++; digits++; }
        if (i < v.Length && v[i] == '.') { i++; while (i < v.Length && char.IsAsciiDigit(v[i])) { i++; digits++; } }
        if (digits == 0) return false;
        if (i < v.Length && v[i] is 'e' or 'E')
        {
            i++;
            if (i < v.Length && v[i] is '+' or '-') i++;
            int exp = 0;
            while (i < v.Length && char.IsAsciiDigit(v[i])) { i++; exp++; }
            if (exp == 0) return false;
        }
        return i == v.Length;
    }
}

/// <summary>A manifest that cannot be read or is not valid; the message names the file, object and field.</summary>
public sealed class ManifestException(string message, Exception? inner = null) : Exception(message, inner);
