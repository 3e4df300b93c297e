using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Hosting;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>journald's native protocol, read back from a datagram socket standing in for /run/systemd/journal/socket.</summary>
public sealed partial class JournalLoggerTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"journal-{Guid.NewGuid():N}.sock");
    private readonly Socket _journal = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);

    public JournalLoggerTests() => _journal.Bind(new UnixDomainSocketEndPoint(_path));

    public void Dispose()
    {
        _journal.Dispose();
        File.Delete(_path);
    }

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "pod {Pod} in {Namespace} failed its {ProbeType} probe ({ApiVersion})")]
    private static partial void LogProbe(ILogger log, string pod, string @namespace, string probeType, string apiVersion);

    /// <summary>Parses one entry: KEY=value lines, and KEY\n + 64-bit LE length + bytes + \n for values with newlines.</summary>
    private static Dictionary<string, string> Parse(ReadOnlySpan<byte> entry)
    {
        var fields = new Dictionary<string, string>();
        while (entry.Length > 0)
        {
            int nl = entry.IndexOf((byte)'\n'), eq = entry.IndexOf((byte)'=');
            if (eq >= 0 && eq < nl)
            {
                fields[Encoding.UTF8.GetString(entry[..eq])] = Encoding.UTF8.GetString(entry[(eq + 1)..nl]);
                entry = entry[(nl + 1)..];
            }
            else
            {
                string key = Encoding.UTF8.GetString(entry[..nl]);
                int len = (int)BinaryPrimitives.ReadUInt64LittleEndian(entry[(nl + 1)..]);
                fields[key] = Encoding.UTF8.GetString(entry.Slice(nl + 9, len));
                Assert.Equal((byte)'\n', entry[nl + 9 + len]);
                entry = entry[(nl + 10 + len)..];
            }
        }
        return fields;
    }

    private Dictionary<string, string> Receive()
    {
        var buffer = new byte[256 * 1024];
        _journal.ReceiveTimeout = 5000;
        int n = _journal.Receive(buffer);
        return Parse(buffer.AsSpan(0, n));
    }

    [Fact]
    public void AnEntryKeepsItsTemplateValuesAsFields()
    {
        using var provider = new JournalLoggerProvider(_path, "node-agent");
        var log = provider.CreateLogger("NodeAgent.Probes.Prober");
        LogProbe(log, "web-1", "default", "Readiness", "v1");
        var f = Receive();
        Assert.Equal("pod web-1 in default failed its Readiness probe (v1)", f["MESSAGE"]);
        Assert.Equal("4", f["PRIORITY"]);
        Assert.Equal("node-agent", f["SYSLOG_IDENTIFIER"]);
        Assert.Equal("NodeAgent.Probes.Prober", f["LOGGER"]);
        Assert.Equal("7", f["EVENT_ID"]);
        Assert.Equal("LogProbe", f["EVENT_NAME"]);
        Assert.Equal(("web-1", "default", "Readiness", "v1"), (f["POD"], f["NAMESPACE"], f["PROBE_TYPE"], f["API_VERSION"]));
        Assert.False(f.ContainsKey("{OriginalFormat}"));
    }

    [Fact]
    public void MultiLineValuesAndExceptionsUseTheBinaryForm()
    {
        using var provider = new JournalLoggerProvider(_path, "control-plane");
        var log = provider.CreateLogger("x");
        log.LogError(new InvalidOperationException("boom"), "loop {Loop} crashed:\nsecond line", "pleg");
        var f = Receive();
        Assert.Equal("loop pleg crashed:\nsecond line", f["MESSAGE"]);
        Assert.Equal("3", f["PRIORITY"]);
        Assert.Equal("pleg", f["LOOP"]);
        Assert.StartsWith("System.InvalidOperationException: boom", f["EXCEPTION"], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Pod", "POD")]
    [InlineData("ApiVersion", "API_VERSION")]
    [InlineData("containerID", "CONTAINER_ID")]
    [InlineData("http2Port", "HTTP2_PORT")]
    [InlineData("_private", "PRIVATE")]
    [InlineData("9lives", "F_9LIVES")]
    [InlineData("a.b-c", "A_B_C")]
    public void FieldNamesFollowJournaldsRules(string name, string field) => Assert.Equal(field, JournalLoggerProvider.FieldName(name));

    [Fact]
    public void NoJournalListeningIsNotAnError()
    {
        using var provider = new JournalLoggerProvider(Path.Combine(Path.GetTempPath(), "absent-" + Guid.NewGuid().ToString("N")), "node-agent");
        provider.CreateLogger("x").LogInformation("nobody hears this");
    }
}
