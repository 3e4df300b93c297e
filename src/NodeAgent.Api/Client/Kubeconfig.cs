using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NodeAgent.Api.Serialization;

namespace NodeAgent.Api.Client;

/// <summary>
/// Where and how to reach an API server: the parts of a kubeconfig's current context the client
/// uses (server, CA, client certificate, bearer token or token file, insecure-skip-tls-verify), or
/// the in-cluster service-account files.
/// </summary>
public sealed class ClientConfig
{
    public required Uri Server { get; init; }
    public X509Certificate2? CaCertificate { get; init; }
    public bool InsecureSkipTlsVerify { get; init; }
    public X509Certificate2? ClientCertificate { get; init; }
    public string? Token { get; init; }
    public string? TokenFile { get; init; }
    public string? User { get; init; }

    /// <summary>Loads the current context of a kubeconfig file (YAML or JSON). Relative paths are relative to the file.</summary>
    public static ClientConfig FromKubeconfig(string path, string? context = null)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        JsonObject root;
        try
        {
            var text = File.ReadAllText(path);
            var docs = text.TrimStart().StartsWith('{') ? [Encoding.UTF8.GetBytes(text)] : YamlToJson.Convert(text);
            root = docs.Count == 1 ? JsonNode.Parse(docs[0]) as JsonObject ?? throw new FormatException("not an object") : throw new FormatException("expected one document");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or JsonException or ManifestException)
        {
            throw new ArgumentException($"kubeconfig {path}: {e.Message}", e);
        }
        string ctxName = context ?? Str(root, "current-context") ?? throw new ArgumentException($"kubeconfig {path}: no current-context");
        var ctx = Named(root, "contexts", ctxName, "context", path);
        string clusterName = Str(ctx, "cluster") ?? throw new ArgumentException($"kubeconfig {path}: context {ctxName} has no cluster");
        var cluster = Named(root, "clusters", clusterName, "cluster", path);
        string? userName = Str(ctx, "user");
        var user = userName is null ? new JsonObject() : Named(root, "users", userName, "user", path);

        string server = Str(cluster, "server") ?? throw new ArgumentException($"kubeconfig {path}: cluster {clusterName} has no server");
        if (!Uri.TryCreate(server, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
            throw new ArgumentException($"kubeconfig {path}: cluster {clusterName}: server \"{server}\" is not an http(s) URL");
        return new ClientConfig
        {
            Server = uri,
            CaCertificate = Pem(cluster, "certificate-authority-data", "certificate-authority", dir) is { } ca ? X509Certificate2.CreateFromPem(ca) : null,
            InsecureSkipTlsVerify = cluster["insecure-skip-tls-verify"]?.GetValueKind() == JsonValueKind.True,
            ClientCertificate = Pem(user, "client-certificate-data", "client-certificate", dir) is { } cert
                ? X509Certificate2.CreateFromPem(cert, Pem(user, "client-key-data", "client-key", dir) ?? throw new ArgumentException($"kubeconfig {path}: user {userName} has a client certificate but no key"))
                : null,
            Token = Str(user, "token"),
            TokenFile = Str(user, "tokenFile") is { } tf ? Path.Combine(dir, tf) : null,
            User = userName,
        };
    }

    /// <summary>The in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT and the service-account token and CA.</summary>
    public static ClientConfig? InCluster()
    {
        string? host = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST"), port = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT");
        const string sa = "/var/run/secrets/kubernetes.io/serviceaccount";
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port) || !File.Exists(Path.Combine(sa, "token"))) return null;
        if (host.Contains(':')) host = $"[{host}]";
        return new ClientConfig
        {
            Server = new Uri($"https://{host}:{port}"),
            CaCertificate = File.Exists(Path.Combine(sa, "ca.crt")) ? X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(sa, "ca.crt"))) : null,
            TokenFile = Path.Combine(sa, "token"),
        };
    }

    private static string? Str(JsonObject? o, string name) =>
        o?[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    private static JsonObject Named(JsonObject root, string list, string name, string inner, string path)
    {
        if (root[list] is JsonArray arr)
            foreach (var n in arr)
                if (n is JsonObject o && Str(o, "name") == name) return o[inner] as JsonObject ?? new JsonObject();
        throw new ArgumentException($"kubeconfig {path}: no {list[..^1]} named \"{name}\"");
    }

    private static string? Pem(JsonObject o, string dataKey, string fileKey, string dir)
    {
        if (Str(o, dataKey) is { } data) return Encoding.UTF8.GetString(Convert.FromBase64String(data));
        if (Str(o, fileKey) is { } file) return File.ReadAllText(Path.Combine(dir, file));
        return null;
    }
}
