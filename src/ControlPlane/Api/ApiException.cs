using System.Text.Json;
using NodeAgent.Api.Validation;

namespace NodeAgent.ControlPlane.Api;

/// <summary>A failed API request, rendered as a metav1.Status with upstream's code, reason and details.</summary>
public sealed class ApiException(int code, string reason, string message) : Exception(message)
{
    public int Code { get; } = code;
    public string Reason { get; } = reason;
    public string? DetailName { get; init; }
    public string? DetailGroup { get; init; }
    public string? DetailKind { get; init; }
    public IReadOnlyList<FieldError>? Causes { get; init; }
    public int? RetryAfterSeconds { get; init; }

    public static ApiException NotFound(ResourceRef r, string name) =>
        new(404, "NotFound", $"{r.Qualified} \"{name}\" not found") { DetailName = name, DetailGroup = r.Group, DetailKind = r.Resource };

    public static ApiException AlreadyExists(ResourceRef r, string name) =>
        new(409, "AlreadyExists", $"{r.Qualified} \"{name}\" already exists") { DetailName = name, DetailGroup = r.Group, DetailKind = r.Resource };

    public static ApiException Conflict(ResourceRef r, string name, string why = "the object has been modified; please apply your changes to the latest version and try again") =>
        new(409, "Conflict", $"Operation cannot be fulfilled on {r.Qualified} \"{name}\": {why}") { DetailName = name, DetailGroup = r.Group, DetailKind = r.Resource };

    public static ApiException Invalid(string kind, string group, string name, IReadOnlyList<FieldError> errors)
    {
        string list = errors.Count == 1 ? errors[0].ToString() : "[" + string.Join(", ", errors) + "]";
        return new(422, "Invalid", $"{kind}{(group.Length > 0 ? "." + group : "")} \"{name}\" is invalid: {list}")
        { DetailName = name, DetailGroup = group, DetailKind = kind, Causes = errors };
    }

    public static ApiException BadRequest(string message) => new(400, "BadRequest", message);
    public static ApiException MethodNotSupported(string resource, string verb) =>
        new(405, "MethodNotAllowed", $"{verb} is not supported on resources of kind \"{resource}\"");
    public static ApiException Gone(string message) => new(410, "Expired", message);
    public static ApiException Forbidden(string message) => new(403, "Forbidden", message);

    /// <summary>
    /// Upstream's 403 for a request its authorizer did not allow: "pods \"x\" is forbidden: User ...
    /// cannot get resource ..." (or "forbidden: User ... cannot get path ..." for other paths).
    /// </summary>
    public static ApiException Forbidden(Auth.AuthorizationAttributes a, string reason)
    {
        string qualified = a.ApiGroup.Length > 0 ? a.Resource + "." + a.ApiGroup : a.Resource;
        string what = !a.IsResourceRequest ? "forbidden" : a.Name.Length > 0 ? $"{qualified} \"{a.Name}\" is forbidden" : $"{qualified} is forbidden";
        return new(403, "Forbidden", what + ": " + a.ForbiddenMessage(reason))
        { DetailName = a.Name.Length > 0 ? a.Name : null, DetailGroup = a.ApiGroup, DetailKind = a.IsResourceRequest ? a.Resource : null };
    }
    public static ApiException Unauthorized() => new(401, "Unauthorized", "Unauthorized");
    public static ApiException UnknownResource() => new(404, "NotFound", "the server could not find the requested resource");
    public static ApiException TooLarge(long limit) => new(413, "RequestEntityTooLarge", $"Request entity too large: limit is {limit}");
    public static ApiException Internal(string message) => new(500, "InternalError", "Internal error occurred: " + message);
    public static ApiException Unavailable(string message) => new(503, "ServiceUnavailable", message) { RetryAfterSeconds = 1 };

    /// <summary>The cause of a server-side apply conflict (its message is the whole detail).</summary>
    public const string ConflictKind = "FieldManagerConflict";

    private static string CauseReason(string kind) => kind switch
    {
        "Required value" => "FieldValueRequired",
        "Invalid value" => "FieldValueInvalid",
        "Duplicate value" => "FieldValueDuplicate",
        "Not found" => "FieldValueNotFound",
        "Forbidden" => "FieldValueForbidden",
        "Unsupported value" => "FieldValueNotSupported",
        "Too long" => "FieldValueTooLong",
        ConflictKind => ConflictKind,
        _ => "FieldValueInvalid",
    };

    public void WriteStatus(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("kind", "Status");
        w.WriteString("apiVersion", "v1");
        w.WriteStartObject("metadata");
        w.WriteEndObject();
        w.WriteString("status", "Failure");
        w.WriteString("message", Message);
        w.WriteString("reason", Reason);
        if (DetailName is not null || DetailKind is not null || Causes is not null || RetryAfterSeconds is not null)
        {
            w.WriteStartObject("details");
            if (!string.IsNullOrEmpty(DetailName)) w.WriteString("name", DetailName);
            if (!string.IsNullOrEmpty(DetailGroup)) w.WriteString("group", DetailGroup);
            if (!string.IsNullOrEmpty(DetailKind)) w.WriteString("kind", DetailKind);
            if (Causes is { Count: > 0 })
            {
                w.WriteStartArray("causes");
                foreach (var c in Causes)
                {
                    w.WriteStartObject();
                    w.WriteString("reason", CauseReason(c.Kind));
                    w.WriteString("message", c.Kind == ConflictKind ? c.Detail : c.ToString()[(c.Field.Length + 2)..]);
                    w.WriteString("field", c.Field);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            if (RetryAfterSeconds is { } ra) w.WriteNumber("retryAfterSeconds", ra);
            w.WriteEndObject();
        }
        w.WriteNumber("code", Code);
        w.WriteEndObject();
    }
}

/// <summary>A resource's name as errors print it: <c>pods</c>, <c>deployments.apps</c>.</summary>
public readonly record struct ResourceRef(string Group, string Resource)
{
    public string Qualified => Group.Length == 0 ? Resource : Resource + "." + Group;
}
