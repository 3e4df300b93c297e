using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Pki;

namespace NodeAgent.ControlPlane.Auth;

/// <summary>An authenticated caller, as user.Info is upstream (Extra: only what impersonation sets).</summary>
public sealed record UserInfo(string Name, string Uid, IReadOnlyList<string> Groups, IReadOnlyDictionary<string, List<string>>? Extra = null);

/// <summary>
/// Client certificates issued by the cluster CA (CN = user, O = groups), static bearer tokens
/// (--token-auth-file, CSV token,user,uid,"group1,group2") and bound service-account tokens. Anonymous callers are refused unless
/// --anonymous-auth; health and version endpoints are always open.
/// </summary>
public sealed class Authenticator
{
    private readonly ClusterPki _pki;
    private readonly Dictionary<string, UserInfo> _tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, UserInfo?> _certs = new(StringComparer.Ordinal);
    private readonly bool _anonymous;
    private readonly ServiceAccountTokens? _serviceAccounts;

    public Authenticator(ClusterPki pki, string? tokenFile, bool anonymous, ServiceAccountTokens? serviceAccounts = null)
    {
        _pki = pki;
        _anonymous = anonymous;
        _serviceAccounts = serviceAccounts;
        if (tokenFile is null) return;
        int lineNo = 0;
        foreach (var raw in File.ReadLines(tokenFile))
        {
            lineNo++;
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var cols = SplitCsv(line);
            if (cols.Count < 3 || cols[0].Length == 0 || cols[1].Length == 0)
                throw new ArgumentException($"--token-auth-file {tokenFile}: line {lineNo}: expected token,user,uid[,\"groups\"]");
            var groups = cols.Count > 3 ? cols[3].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
            _tokens[cols[0]] = new UserInfo(cols[1], cols[2], [.. groups, "system:authenticated"]);
        }
    }

    private static List<string> SplitCsv(string line)
    {
        var cols = new List<string>();
        var cur = new System.Text.StringBuilder();
        bool quoted = false;
        foreach (char c in line)
        {
            if (c == '"') quoted = !quoted;
            else if (c == ',' && !quoted) { cols.Add(cur.ToString()); cur.Clear(); }
            else cur.Append(c);
        }
        cols.Add(cur.ToString());
        return cols;
    }

    /// <summary>
    /// Reads whether an object still exists with the given uid (namespace, resource, name, uid);
    /// set by the API server. A token is honoured only while its ServiceAccount, and the pod it is
    /// bound to, exist with the uids it was issued for (so deleting either revokes it).
    /// </summary>
    public Func<string, string, string, string, CancellationToken, Task<bool>>? ObjectExists { get; set; }

    private static readonly TimeSpan LookupCacheTime = TimeSpan.FromSeconds(10);
    private readonly ConcurrentDictionary<string, long> _stillBound = new(StringComparer.Ordinal);

    private async Task<bool> StillBoundAsync(ServiceAccountTokens.Claims c, CancellationToken ct)
    {
        if (ObjectExists is not { } exists) return true;
        string key = c.ServiceAccountUid + "/" + c.PodUid;
        long now = Environment.TickCount64;
        if (_stillBound.TryGetValue(key, out long until) && until > now) return true;
        bool ok = await exists(c.Namespace, "serviceaccounts", c.ServiceAccount, c.ServiceAccountUid, ct).ConfigureAwait(false)
                  && (c.Pod is null || await exists(c.Namespace, "pods", c.Pod, c.PodUid ?? "", ct).ConfigureAwait(false));
        if (ok)
        {
            if (_stillBound.Count > 10_000) _stillBound.Clear(); // bounded: a burst of distinct tokens cannot grow it without limit
            _stillBound[key] = now + (long)LookupCacheTime.TotalMilliseconds;
        }
        else _stillBound.TryRemove(key, out _);
        return ok;
    }

    public static bool IsPublic(PathString path) =>
        path.StartsWithSegments("/healthz") || path.StartsWithSegments("/livez") || path.StartsWithSegments("/readyz") || path.StartsWithSegments("/version");

    /// <summary>The caller, or null when the request must be refused with 401.</summary>
    public async Task<UserInfo?> AuthenticateAsync(HttpContext ctx)
    {
        var cert = ctx.Connection.ClientCertificate ?? await ctx.Connection.GetClientCertificateAsync(ctx.RequestAborted).ConfigureAwait(false);
        if (cert is not null && FromCertificate(cert) is { } cu) return cu;
        string auth = ctx.Request.Headers.Authorization.ToString();
        if (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            string token = auth[7..].Trim();
            if (_tokens.TryGetValue(token, out var tu)) return tu;
            if (_serviceAccounts?.ValidateClaims(token) is { } sa && await StillBoundAsync(sa, ctx.RequestAborted).ConfigureAwait(false)) return sa.User;
        }
        if (_anonymous || IsPublic(ctx.Request.Path)) return new UserInfo("system:anonymous", "", ["system:unauthenticated"]);
        return null;
    }

    private UserInfo? FromCertificate(X509Certificate2 cert) => _certs.GetOrAdd(cert.Thumbprint, _ =>
    {
        if (!_pki.Verify(cert)) return null;
        string? cn = null;
        var groups = new List<string>();
        foreach (var rdn in cert.SubjectName.EnumerateRelativeDistinguishedNames())
        {
            string? oid = rdn.GetSingleElementType().Value;
            string? value = rdn.GetSingleElementValue();
            if (value is null) continue;
            if (oid == "2.5.4.3") cn = value;
            else if (oid == "2.5.4.10") groups.Add(value);
        }
        if (string.IsNullOrEmpty(cn)) return null;
        groups.Add("system:authenticated");
        return new UserInfo(cn, "", groups);
    });
}
