namespace NodeAgent.Api.Validation;

/// <summary>The name grammars of apimachinery's validation package, without regular expressions.</summary>
public static class Names
{
    /// <summary>RFC 1123 label: at most 63 lowercase alphanumerics or '-', alphanumeric at both ends.</summary>
    public static string? Dns1123Label(string? v)
    {
        if (string.IsNullOrEmpty(v)) return "must be non-empty";
        if (v.Length > 63) return "must be no more than 63 characters";
        if (!IsLabel(v)) return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc')";
        return null;
    }

    /// <summary>RFC 1035 label (Service names): like an RFC 1123 label, but must start with a letter.</summary>
    public static string? Dns1035Label(string? v)
    {
        if (string.IsNullOrEmpty(v)) return "must be non-empty";
        if (v.Length > 63) return "must be no more than 63 characters";
        if (!IsLabel(v) || !char.IsAsciiLetterLower(v[0]))
            return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123')";
        return null;
    }

    /// <summary>RFC 1123 subdomain: dot-separated labels, at most 253 characters.</summary>
    public static string? Dns1123Subdomain(string? v)
    {
        if (string.IsNullOrEmpty(v)) return "must be non-empty";
        if (v.Length > 253) return "must be no more than 253 characters";
        foreach (var part in v.Split('.'))
            if (!IsLabel(part))
                return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
        return null;
    }

    /// <summary>IANA_SVC_NAME (RFC 6335): at most 15 characters, lowercase alphanumerics and '-', at least one letter, no '--'.</summary>
    public static string? IanaSvcName(string v)
    {
        if (v.Length is 0 or > 15) return "must be no more than 15 characters";
        bool letter = false;
        for (int i = 0; i < v.Length; i++)
        {
            char c = v[i];
            if (c is >= 'a' and <= 'z') letter = true;
            else if (!(char.IsAsciiDigit(c) || c == '-')) return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)";
        }
        if (v.Contains("--", StringComparison.Ordinal)) return "must not contain consecutive hyphens";
        if (!letter) return "must contain at least one letter (a-z)";
        if (v[0] == '-' || v[^1] == '-') return "must not begin or end with a hyphen";
        return null;
    }

    /// <summary>Label value: empty, or at most 63 of [A-Za-z0-9-_.] with alphanumerics at both ends.</summary>
    public static string? LabelValue(string v)
    {
        if (v.Length == 0) return null;
        if (v.Length > 63) return "must be no more than 63 characters";
        if (!char.IsAsciiLetterOrDigit(v[0]) || !char.IsAsciiLetterOrDigit(v[^1])) return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
        foreach (char c in v) if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
        return null;
    }

    /// <summary>Qualified name (label and annotation keys): optional DNS-subdomain prefix and '/', then a 63-character name.</summary>
    public static string? QualifiedName(string v)
    {
        string name = v;
        int slash = v.IndexOf('/');
        if (slash >= 0)
        {
            if (Dns1123Subdomain(v[..slash]) is { } e) return "prefix part " + e;
            name = v[(slash + 1)..];
        }
        if (name.Length is 0 or > 63) return "name part must be non-empty and no more than 63 characters";
        if (!char.IsAsciiLetterOrDigit(name[0]) || !char.IsAsciiLetterOrDigit(name[^1])) return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
        foreach (char c in name) if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
        return null;
    }

    private static bool IsLabel(string v)
    {
        if (v.Length is 0 or > 63) return false;
        foreach (char c in v) if (!(c is >= 'a' and <= 'z' || char.IsAsciiDigit(c) || c == '-')) return false;
        return v[0] != '-' && v[^1] != '-';
    }
}
