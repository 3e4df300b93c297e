// Writes the served kinds' field tables (names and shapes only) for strict field validation and
// the OpenAPI schemas. The shapes: "" a string, "=" + a letter another scalar (i int32, l int64,
// b boolean, d number, t date-time, y bytes, q quantity, o int-or-string), "*" anything (raw
// extensions), a type name, "[" + shape a list, "{" + shape a map with string keys. One line per
// type: "Type field:shape field:shape ...", a string field written by its name alone. Then each
// type's OpenAPI definition name, as upstream names it (io.k8s.api.core.v1.PodSpec, ...).
using System.Reflection;
using System.Text;
using System.Text.Json.Serialization;

var roots = new (string Kind, string Group, Type Model)[]
{
    ("Namespace", "", typeof(k8s.Models.V1Namespace)), ("Pod", "", typeof(k8s.Models.V1Pod)), ("Node", "", typeof(k8s.Models.V1Node)),
    ("Service", "", typeof(k8s.Models.V1Service)), ("Endpoints", "", typeof(k8s.Models.V1Endpoints)), ("ConfigMap", "", typeof(k8s.Models.V1ConfigMap)),
    ("Secret", "", typeof(k8s.Models.V1Secret)), ("ServiceAccount", "", typeof(k8s.Models.V1ServiceAccount)), ("Event", "", typeof(k8s.Models.Corev1Event)),
    ("Deployment", "apps", typeof(k8s.Models.V1Deployment)), ("ReplicaSet", "apps", typeof(k8s.Models.V1ReplicaSet)),
    ("DaemonSet", "apps", typeof(k8s.Models.V1DaemonSet)), ("ControllerRevision", "apps", typeof(k8s.Models.V1ControllerRevision)),
    ("EndpointSlice", "discovery.k8s.io", typeof(k8s.Models.V1EndpointSlice)), ("Lease", "coordination.k8s.io", typeof(k8s.Models.V1Lease)),
};
var types = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
var pending = new Queue<Type>();
string Name(Type t) => t.Name;
bool IsScalar(Type t) => t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(DateTime) || t == typeof(byte[])
    || t.Name is "ResourceQuantity" or "IntOrString" || Nullable.GetUnderlyingType(t) is not null;
string Scalar(Type t)
{
    t = Nullable.GetUnderlyingType(t) ?? t;
    if (t == typeof(string)) return "";
    if (t == typeof(int)) return "=i";
    if (t == typeof(long)) return "=l";
    if (t == typeof(bool)) return "=b";
    if (t == typeof(double) || t == typeof(float)) return "=d";
    if (t == typeof(DateTime)) return "=t";
    if (t == typeof(byte[])) return "=y";
    if (t.Name == "ResourceQuantity") return "=q";
    if (t.Name == "IntOrString") return "=o";
    throw new InvalidOperationException("a scalar of an unknown type: " + t);
}
// The API group's package of a model type: the few meta, apps, discovery and coordination types by
// name, core for the rest.
string OpenApiName(string model)
{
    string bare = model.StartsWith("Corev1", StringComparison.Ordinal) ? model[6..]
        : model.StartsWith("Discoveryv1", StringComparison.Ordinal) ? model[11..] : model[2..];
    string package = model switch
    {
        "V1Condition" or "V1LabelSelector" or "V1LabelSelectorRequirement" or "V1ManagedFieldsEntry" or "V1ObjectMeta" or "V1OwnerReference" => "io.k8s.apimachinery.pkg.apis.meta.v1",
        _ when model.StartsWith("Discoveryv1", StringComparison.Ordinal) => "io.k8s.api.discovery.v1",
        "V1Endpoint" or "V1EndpointConditions" or "V1EndpointHints" or "V1EndpointSlice" or "V1ForNode" or "V1ForZone" => "io.k8s.api.discovery.v1",
        "V1Lease" or "V1LeaseSpec" => "io.k8s.api.coordination.v1",
        "V1ControllerRevision" or "V1RollingUpdateDaemonSet" or "V1RollingUpdateDeployment" => "io.k8s.api.apps.v1",
        _ when model.StartsWith("V1Deployment", StringComparison.Ordinal) || model.StartsWith("V1ReplicaSet", StringComparison.Ordinal)
            || model.StartsWith("V1DaemonSet", StringComparison.Ordinal) => "io.k8s.api.apps.v1",
        _ => "io.k8s.api.core.v1",
    };
    return package + "." + bare;
}
string Shape(Type t)
{
    if (IsScalar(t)) return Scalar(t);
    if (t == typeof(object) || t.Name == "JsonElement") return "*";
    var dict = t.GetInterfaces().Append(t).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>));
    if (dict is not null) return "{" + Shape(dict.GetGenericArguments()[1]);
    var list = t.GetInterfaces().Append(t).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IList<>));
    if (list is not null) return "[" + Shape(list.GetGenericArguments()[0]);
    if (!types.ContainsKey(Name(t))) { types[Name(t)] = []; pending.Enqueue(t); }
    return Name(t);
}
foreach (var r in roots) Shape(r.Model);
while (pending.Count > 0)
{
    var t = pending.Dequeue();
    var fields = types[Name(t)];
    foreach (var p in t.GetProperties(BindingFlags.Public | BindingFlags.Instance))
    {
        string? json = p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name;
        if (json is null) continue;
        string shape = Shape(p.PropertyType);
        fields.Add(shape.Length == 0 ? json : json + ":" + shape);
    }
    fields.Sort(StringComparer.Ordinal);
}
var sb = new StringBuilder();
sb.Append("// <auto-generated> by tools/SchemaGen from the KubernetesClient ")
  .Append(typeof(k8s.Models.V1Pod).Assembly.GetName().Version).Append(" models: field names, shapes and definition names only. Do not edit. </auto-generated>\n");
sb.Append("namespace NodeAgent.ControlPlane.Registry;\n\npublic static partial class FieldSchema\n{\n");
sb.Append("    private static readonly (string Kind, string Group, string Type)[] Roots =\n    [\n");
foreach (var r in roots) sb.Append($"        (\"{r.Kind}\", \"{r.Group}\", \"{Name(r.Model)}\"),\n");
sb.Append("    ];\n\n    private const string Table = \"\"\"\n");
foreach (var (t, f) in types) sb.Append(t).Append(' ').Append(string.Join(' ', f)).Append('\n');
sb.Append("\"\"\";\n\n    private const string OpenApiNames = \"\"\"\n");
foreach (var t in types.Keys) sb.Append(t).Append(' ').Append(OpenApiName(t)).Append('\n');
sb.Append("\"\"\";\n}\n");
string repo = Directory.GetCurrentDirectory();
while (!File.Exists(Path.Combine(repo, "NodeAgent.sln"))) repo = Path.GetDirectoryName(repo) ?? throw new InvalidOperationException("run inside the repository");
string output = args.Length > 0 ? args[0] : Path.Combine(repo, "src/ControlPlane/Registry/FieldSchema.Generated.cs");
File.WriteAllText(output, sb.ToString());
Console.WriteLine($"{types.Count} types, {types.Values.Sum(f => f.Count)} fields -> {output}");
