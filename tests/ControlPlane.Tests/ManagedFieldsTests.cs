using System.Text.Json.Nodes;
using NodeAgent.ControlPlane.Api;
using NodeAgent.ControlPlane.Patch;
using Xunit;

namespace NodeAgent.ControlPlane.Tests;

/// <summary>Field sets, update tracking and server-side apply (ManagedFields), on objects in memory.</summary>
public sealed class ManagedFieldsTests
{
    private const string Now = "2026-12-06T06:00:00Z";
    private static readonly System.Text.Json.JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static JsonObject Deployment(string labels = "{\"app\":\"web\",\"tier\":\"front\"}", int replicas = 2,
        string env = "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}]") =>
        JsonNode.Parse("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"ns","labels":LABELS},
             "spec":{"replicas":REPLICAS,"selector":{"matchLabels":{"app":"web"}},
              "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"busybox:1.36",
               "env":ENV,"ports":[{"containerPort":80}]}]}}}}
            """.Replace("LABELS", labels).Replace("REPLICAS", replicas.ToString(System.Globalization.CultureInfo.InvariantCulture)).Replace("ENV", env))!.AsObject();

    private static JsonObject Entry(JsonObject obj, string manager, string operation = "Apply") =>
        obj["metadata"]!["managedFields"]!.AsArray().Select(e => e!.AsObject())
            .Single(e => e["manager"]!.GetValue<string>() == manager && e["operation"]!.GetValue<string>() == operation);

    [Fact]
    public void TheFieldSetOfADeploymentIsUpstreamsFieldsV1()
    {
        // Leaves and keyed-list items are members; maps and structs are not; a label selector is atomic;
        // ports are keyed on containerPort and protocol (TCP when left out); server-owned metadata is left out.
        var set = ManagedFields.Of(Deployment(), "Deployment");
        Assert.Equal(
            """{"f:metadata":{"f:labels":{"f:app":{},"f:tier":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:env":{"k:{\"name\":\"A\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"B\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}""",
            set.ToJson().ToJsonString(Relaxed));
        // FieldsV1 read back is the same set.
        Assert.Equal(set.ToJson().ToJsonString(Relaxed), FieldSet.FromJson(set.ToJson()).ToJson().ToJsonString(Relaxed));
    }

    [Fact]
    public void AnApplyThatCreatesIsFiledUnderItsManagerAlone()
    {
        var created = ManagedFields.Apply(null, Deployment(), "Deployment", "kubectl", "apps/v1", false, null, Now);
        var entry = Assert.Single(created["metadata"]!["managedFields"]!.AsArray())!.AsObject();
        Assert.Equal("kubectl", entry["manager"]!.GetValue<string>());
        Assert.Equal("Apply", entry["operation"]!.GetValue<string>());
        Assert.Equal("apps/v1", entry["apiVersion"]!.GetValue<string>());
        Assert.Equal("FieldsV1", entry["fieldsType"]!.GetValue<string>());
        Assert.Equal(Now, entry["time"]!.GetValue<string>());
        Assert.Null(entry["subresource"]);
        Assert.Equal(2, created["spec"]!["replicas"]!.GetValue<int>());

        // The same configuration again changes nothing, not even the entry's time.
        var again = ManagedFields.Apply(created, Deployment(), "Deployment", "kubectl", "apps/v1", false, null, "2026-12-06T07:00:00Z");
        Assert.True(JsonNode.DeepEquals(created, again), again.ToJsonString());
    }

    [Fact]
    public void AWriteByAnotherManagerIsTrackedAndItsFieldsLeaveTheOthers()
    {
        var live = ManagedFields.Apply(null, Deployment(), "Deployment", "kubectl", "apps/v1", false, null, Now);
        var next = (JsonObject)live.DeepClone();
        next["spec"]!["replicas"] = 5;
        next["metadata"]!["labels"]!["extra"] = "1";
        next["metadata"]!["annotations"] = new JsonObject { ["note"] = "hi" };
        ManagedFields.TrackUpdate(live, next, "Deployment", "kubectl-edit", "apps/v1", null, Now);

        var edit = Entry(next, "kubectl-edit", "Update");
        // A map the write created is owned whole ("."), as upstream files it; a changed scalar moves over.
        Assert.Equal("""{"f:metadata":{"f:annotations":{".":{},"f:note":{}},"f:labels":{"f:extra":{}}},"f:spec":{"f:replicas":{}}}""",
            edit["fieldsV1"]!.ToJsonString(Relaxed));
        var applied = FieldSet.FromJson(Entry(next, "kubectl")["fieldsV1"]!.AsObject());
        Assert.False(applied.Contains(["f:spec", "f:replicas"]));
        Assert.True(applied.Contains(["f:metadata", "f:labels", "f:tier"]));

        // A field that is gone leaves every set.
        var after = (JsonObject)next.DeepClone();
        after["metadata"]!["labels"]!.AsObject().Remove("tier");
        ManagedFields.TrackUpdate(next, after, "Deployment", "kubectl-label", "apps/v1", null, Now);
        Assert.False(FieldSet.FromJson(Entry(after, "kubectl")["fieldsV1"]!.AsObject()).Contains(["f:metadata", "f:labels", "f:tier"]));
    }

    [Fact]
    public void AnUntrackedObjectStaysUntrackedUntilItsFirstApply()
    {
        var live = Deployment();
        var next = (JsonObject)live.DeepClone();
        next["spec"]!["replicas"] = 3;
        ManagedFields.TrackUpdate(live, next, "Deployment", "kubectl-edit", "apps/v1", null, Now);
        Assert.Null(next["metadata"]!["managedFields"]);

        // The first apply files what the object held under before-first-apply, and conflicts with it.
        var e = Assert.Throws<ApiException>(() => ManagedFields.Apply(next, Deployment(replicas: 4), "Deployment", "kubectl", "apps/v1", false, null, Now));
        Assert.Equal(409, e.Code);
        Assert.Equal("Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas", e.Message);
        // Applying the values it already has takes no field from anyone: they are shared.
        var shared = ManagedFields.Apply(next, Deployment(replicas: 3), "Deployment", "kubectl", "apps/v1", false, null, Now);
        Assert.True(FieldSet.FromJson(Entry(shared, "before-first-apply", "Update")["fieldsV1"]!.AsObject()).Contains(["f:spec", "f:replicas"]));
        Assert.True(FieldSet.FromJson(Entry(shared, "kubectl")["fieldsV1"]!.AsObject()).Contains(["f:spec", "f:replicas"]));
    }

    [Fact]
    public void ConflictsNameEveryOwnerAndForceTakesTheFields()
    {
        var live = ManagedFields.Apply(null, Deployment(), "Deployment", "kubectl", "apps/v1", false, null, Now);
        var scaled = (JsonObject)live.DeepClone();
        scaled["spec"]!["replicas"] = 5;
        ManagedFields.TrackUpdate(live, scaled, "Deployment", "kubectl", "apps/v1", "scale", Now);
        var labeled = (JsonObject)scaled.DeepClone();
        labeled["metadata"]!["labels"]!["tier"] = "back";
        ManagedFields.TrackUpdate(scaled, labeled, "Deployment", "kubectl-label", "apps/v1", null, Now);

        var e = Assert.Throws<ApiException>(() => ManagedFields.Apply(labeled, Deployment(), "Deployment", "kubectl", "apps/v1", false, null, Now));
        Assert.Equal(409, e.Code);
        Assert.Equal("Conflict", e.Reason);
        Assert.Equal(
            "Apply failed with 2 conflicts: conflicts with \"kubectl\" with subresource \"scale\" using apps/v1:\n- .spec.replicas\nconflicts with \"kubectl-label\" using apps/v1:\n- .metadata.labels.tier",
            e.Message);
        Assert.Equal([".spec.replicas", ".metadata.labels.tier"], e.Causes!.Select(c => c.Field));
        Assert.All(e.Causes!, c => Assert.Equal(ApiException.ConflictKind, c.Kind));

        var forced = ManagedFields.Apply(labeled, Deployment(), "Deployment", "kubectl", "apps/v1", true, null, Now);
        Assert.Equal(2, forced["spec"]!["replicas"]!.GetValue<int>());
        Assert.Equal("front", forced["metadata"]!["labels"]!["tier"]!.GetValue<string>());
        // The losers' entries had nothing else: they are gone.
        Assert.Equal(["kubectl"], forced["metadata"]!["managedFields"]!.AsArray().Select(x => x!["manager"]!.GetValue<string>()));
    }

    [Fact]
    public void AReapplyRemovesWhatItNoLongerAppliesUnlessAnotherManagerHoldsIt()
    {
        var live = ManagedFields.Apply(null, Deployment(), "Deployment", "kubectl", "apps/v1", false, null, Now);
        // Another manager sets env B's value (the same value: no conflict, now shared) and adds a label.
        var other = (JsonObject)live.DeepClone();
        other["metadata"]!["labels"]!["extra"] = "1";
        other["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]![1]!["value"] = "3";
        ManagedFields.TrackUpdate(live, other, "Deployment", "kubectl-edit", "apps/v1", null, Now);

        // The configuration drops label tier, env A and env B.
        var config = Deployment(labels: "{\"app\":\"web\"}", env: "[]");
        var result = ManagedFields.Apply(other, config, "Deployment", "kubectl", "apps/v1", false, null, Now);
        var labels = result["metadata"]!["labels"]!.AsObject();
        Assert.False(labels.ContainsKey("tier"));          // only kubectl had it: removed
        Assert.Equal("1", labels["extra"]!.GetValue<string>()); // never kubectl's: kept
        var env = result["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray();
        // A is gone with its fields; B stays, with its key, because kubectl-edit holds its value.
        var b = Assert.Single(env)!.AsObject();
        Assert.Equal("B", b["name"]!.GetValue<string>());
        Assert.Equal("3", b["value"]!.GetValue<string>());
        Assert.False(FieldSet.FromJson(Entry(result, "kubectl")["fieldsV1"]!.AsObject()).Contains(["f:metadata", "f:labels", "f:tier"]));
    }

    [Fact]
    public void KeyedListsAndSetsMergeItemByItemAndEverythingElseIsReplaced()
    {
        var live = ManagedFields.Apply(null, Deployment(), "Deployment", "a", "apps/v1", false, null, Now);
        live["metadata"]!["finalizers"] = new JsonArray("x/one");
        // A second applier adds a container, an env var to the first one, and a finalizer.
        var config = JsonNode.Parse("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","finalizers":["x/two"]},
             "spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"C","value":"3"}]},{"name":"side","image":"busybox:1.37"}]}}}}
            """)!.AsObject();
        var merged = ManagedFields.Apply(live, config, "Deployment", "b", "apps/v1", false, null, Now);
        var containers = merged["spec"]!["template"]!["spec"]!["containers"]!.AsArray();
        Assert.Equal(["app", "side"], containers.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal(["A", "B", "C"], containers[0]!["env"]!.AsArray().Select(x => x!["name"]!.GetValue<string>()));
        Assert.Equal("busybox:1.36", containers[0]!["image"]!.GetValue<string>());
        Assert.Equal(["x/one", "x/two"], merged["metadata"]!["finalizers"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal("""{"f:metadata":{"f:finalizers":{"v:\"x/two\"":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:env":{"k:{\"name\":\"C\"}":{".":{},"f:name":{},"f:value":{}}},"f:name":{}},"k:{\"name\":\"side\"}":{".":{},"f:image":{},"f:name":{}}}}}}}""",
            Entry(merged, "b")["fieldsV1"]!.ToJsonString(Relaxed));
    }

    [Fact]
    public void ApplyingStatusTouchesStatusAloneAndTheMainResourceNeverAppliesStatus()
    {
        var live = Deployment();
        live["status"] = new JsonObject { ["replicas"] = 1 };
        var main = Deployment();
        main["status"] = new JsonObject { ["replicas"] = 9 };
        var applied = ManagedFields.Apply(live, main, "Deployment", "kubectl", "apps/v1", true, null, Now);
        Assert.Equal(1, applied["status"]!["replicas"]!.GetValue<int>());

        var status = ManagedFields.Apply(live, main, "Deployment", "ctl", "apps/v1", true, "status", Now);
        var entry = Entry(status, "ctl");
        Assert.Equal("status", entry["subresource"]!.GetValue<string>());
        Assert.Equal("""{"f:status":{"f:replicas":{}}}""", entry["fieldsV1"]!.ToJsonString(Relaxed));
    }
}
