using System.Text;
using NodeAgent.Api.Serialization;
using Xunit;

namespace NodeAgent.Tests;

public sealed class YamlToJsonTests
{
    private static string One(string yaml) => Encoding.UTF8.GetString(Assert.Single(YamlToJson.Convert(yaml)));

    [Theory]
    [InlineData("a: 1", """{"a":1}""")]
    [InlineData("a: '1'", """{"a":"1"}""")]
    [InlineData("a: 1.50", """{"a":1.50}""")]
    [InlineData("a: true\nb: False\nc: yes", """{"a":true,"b":false,"c":"yes"}""")]
    [InlineData("a: ~\nb: null\nc:", """{"a":null,"b":null,"c":null}""")]
    [InlineData("mode: 0644", """{"mode":420}""")]
    [InlineData("hex: 0x1F", """{"hex":31}""")]
    [InlineData("v: 1e3", """{"v":1e3}""")]
    [InlineData("v: 12Mi", """{"v":"12Mi"}""")]
    [InlineData("v: .5", """{"v":0.5}""")]
    [InlineData("v: !!str 5", """{"v":"5"}""")]
    [InlineData("l: [a, 'b', 3]", """{"l":["a","b",3]}""")]
    [InlineData("m: {x: {y: z}}", """{"m":{"x":{"y":"z"}}}""")]
    [InlineData("s: |\n  line1\n  line2\n", """{"s":"line1\nline2\n"}""")]
    public void ConvertsScalarsAndCollectionsLikeSigsYaml(string yaml, string json) => Assert.Equal(json, One(yaml));

    [Fact]
    public void SplitsDocumentsAndSkipsEmptyOnes()
    {
        var docs = YamlToJson.Convert("---\na: 1\n---\n---\nb: 2\n...\n");
        Assert.Equal(["""{"a":1}""", """{"b":2}"""], docs.Select(d => Encoding.UTF8.GetString(d)));
    }

    [Theory]
    [InlineData("metadata: {name: x\nspec: [")]
    [InlineData("a: [1, 2")]
    [InlineData("a: b: c")]
    [InlineData("a: 'unterminated")]
    [InlineData("a: &x 1\nb: *x")]
    [InlineData("? [complex]\n: key")]
    public void BadYamlIsAManifestErrorWithALine(string yaml)
    {
        var e = Assert.Throws<ManifestException>(() => YamlToJson.Convert(yaml));
        Assert.StartsWith("invalid YAML at line", e.Message);
    }
}
