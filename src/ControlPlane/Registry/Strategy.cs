using System.Text.Json.Nodes;
using NodeAgent.Api.Validation;
using NodeAgent.ControlPlane.Storage;

namespace NodeAgent.ControlPlane.Registry;

/// <summary>
/// What the apiserver's registry strategies do for one kind: defaults, validation, and the field
/// resets that keep status and spec apart (a spec update cannot write status, a status update
/// cannot write anything else) and bump metadata.generation on spec changes.
/// </summary>
public class Strategy
{
    /// <summary>The kind's name rule: DNS-1123 subdomain unless the kind says otherwise.</summary>
    public virtual Func<string?, string?> NameRule => Names.Dns1123Subdomain;

    /// <summary>Status is written only through the status subresource: main-resource updates keep the stored status.</summary>
    public bool StatusSubresource { get; init; }

    /// <summary>Create drops any status the client sent (most kinds; nodes keep theirs).</summary>
    public bool ClearStatusOnCreate { get; init; } = true;

    /// <summary>metadata.generation starts at 1 and grows with every spec change.</summary>
    public bool Generation { get; init; }

    /// <summary>Whether an update without a resourceVersion is allowed (upstream: true for most kinds).</summary>
    public virtual bool AllowUnconditionalUpdate => true;

    public virtual void Default(JsonObject obj) { }

    public virtual void PrepareForCreate(JsonObject obj)
    {
        if (StatusSubresource && ClearStatusOnCreate) obj.Remove("status");
        if (Generation) obj.Meta()["generation"] = 1;
    }

    public virtual void PrepareForUpdate(JsonObject obj, JsonObject old)
    {
        if (StatusSubresource)
        {
            if (old["status"] is { } st) obj["status"] = st.DeepClone(); else obj.Remove("status");
        }
        if (Generation)
        {
            long gen = old.Meta().Long("generation") ?? 1;
            if (!JsonNode.DeepEquals(obj["spec"], old["spec"])) gen++;
            obj.Meta()["generation"] = gen;
        }
    }

    /// <summary>A status write: everything but status is taken from the stored object.</summary>
    public virtual JsonObject PrepareForStatusUpdate(JsonObject obj, JsonObject old)
    {
        var result = (JsonObject)old.DeepClone();
        if (obj["status"] is { } st) result["status"] = st.DeepClone(); else result.Remove("status");
        result.Meta()["resourceVersion"] = obj.Meta().Str("resourceVersion");
        return result;
    }

    public virtual List<FieldError> Validate(JsonObject obj, bool namespaced) => ValidateMeta(obj, namespaced);

    /// <summary>
    /// Refuses a status write whose body has a member of the wrong type outside status: only
    /// status is kept from it, but upstream decodes the whole body first. For kinds type-checked
    /// by their field tables alone this is already done; a kind with a typed decode adds it here.
    /// </summary>
    public virtual void CheckStatusWriteBody(JsonObject body) { }

    /// <summary>
    /// Create preparation and validation in one step (kinds that decode a typed view once override it).
    /// A kind that encodes the prepared object on the way may hand those bytes back in
    /// <paramref name="encoded"/>: they are then exactly <see cref="ObjectCodec.Encode"/> of <paramref name="obj"/>.
    /// </summary>
    public virtual List<FieldError> PrepareAndValidateCreate(JsonObject obj, bool namespaced, out byte[]? encoded)
    {
        encoded = null;
        PrepareForCreate(obj);
        return Validate(obj, namespaced);
    }

    public virtual List<FieldError> ValidateUpdate(JsonObject obj, JsonObject old, bool namespaced) => Validate(obj, namespaced);

    protected List<FieldError> ValidateMeta(JsonObject obj, bool namespaced, string path = "metadata")
    {
        var errs = new List<FieldError>();
        var m = obj.ObjOrNull("metadata");
        string? name = m.Str("name");
        if (string.IsNullOrEmpty(name)) errs.Add(FieldError.Required(path + ".name", "name or generateName is required"));
        else if (NameRule(name) is { } ne) errs.Add(FieldError.Invalid(path + ".name", name, ne));
        if (namespaced && string.IsNullOrEmpty(m.Str("namespace"))) errs.Add(FieldError.Required(path + ".namespace"));
        ValidateLabels(m, path, errs);
        return errs;
    }

    internal static void ValidateLabels(JsonObject? m, string path, List<FieldError> errs)
    {
        if (m.ObjOrNull("labels") is { } labels)
            foreach (var (k, v) in labels)
            {
                if (Names.QualifiedName(k) is { } ke) errs.Add(FieldError.Invalid(path + ".labels", k, ke));
                if (v is not JsonValue jv || jv.GetValueKind() != System.Text.Json.JsonValueKind.String) errs.Add(FieldError.Invalid($"{path}.labels", v?.ToJsonString(), "must be a string"));
                else if (Names.LabelValue(jv.GetValue<string>()) is { } ve) errs.Add(FieldError.Invalid(path + ".labels", jv.GetValue<string>(), ve));
            }
        if (m.ObjOrNull("annotations") is { } ann)
        {
            long size = 0;
            foreach (var (k, v) in ann)
            {
                if (Names.QualifiedName(k.ToLowerInvariant()) is { } ke) errs.Add(FieldError.Invalid(path + ".annotations", k, ke));
                size += k.Length + (v is JsonValue jv && jv.GetValueKind() == System.Text.Json.JsonValueKind.String ? jv.GetValue<string>().Length : 0);
            }
            if (size > 256 * 1024) errs.Add(new FieldError(path + ".annotations", "Too long", null, "must have at most 262144 bytes"));
        }
    }

    protected static void Immutable(JsonNode? now, JsonNode? before, string field, List<FieldError> errs)
    {
        if (!JsonNode.DeepEquals(now, before)) errs.Add(FieldError.Invalid(field, now is JsonValue v ? v.ToString() : now?.ToJsonString(), "field is immutable"));
    }
}
