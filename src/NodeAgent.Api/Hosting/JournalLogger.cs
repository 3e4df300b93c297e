using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace NodeAgent.Api.Hosting;

/// <summary>
/// Logs straight to journald over its native protocol (one datagram per entry to
/// /run/systemd/journal/socket), so each entry keeps its structure: MESSAGE, PRIORITY,
/// SYSLOG_IDENTIFIER, LOGGER (the category), EVENT_ID/EVENT_NAME, EXCEPTION, and every named
/// value of the message template as a field of its own (<c>{Pod}</c> becomes POD=...,
/// <c>{ApiVersion}</c> API_VERSION=...), which <c>journalctl -u node-agent POD=web-1</c> filters on.
/// Used when systemd connected the process's output to the journal (JOURNAL_STREAM); the
/// console otherwise.
/// </summary>
public sealed class JournalLoggerProvider(string socketPath, string identifier) : ILoggerProvider
{
    public const string DefaultSocket = "/run/systemd/journal/socket";
    /// <summary>Longest value sent; journald's datagrams are limited (larger entries need a memfd).</summary>
    private const int MaxValueBytes = 48 * 1024;

    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly UnixDomainSocketEndPoint _target = new(socketPath);
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;

    /// <summary>The journal when systemd runs the process with its output in the journal; null otherwise.</summary>
    public static JournalLoggerProvider? FromEnvironment(string identifier) =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM")) && File.Exists(DefaultSocket)
            ? new JournalLoggerProvider(DefaultSocket, identifier) : null;

    public ILogger CreateLogger(string categoryName) => new JournalLogger(this, categoryName);

    public void Dispose() => _socket.Dispose();

    /// <summary>journald's field name for a template name: upper case, words split by '_', only [A-Z0-9_], not starting with '_' or a digit.</summary>
    public static string FieldName(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsAsciiLetterUpper(c) && i > 0 && (char.IsAsciiLetterLower(name[i - 1]) || char.IsAsciiDigit(name[i - 1]))) sb.Append('_');
            sb.Append(char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_');
        }
        string s = sb.ToString().TrimStart('_');
        if (s.Length == 0 || char.IsAsciiDigit(s[0])) s = "F_" + s;
        return s.Length > 64 ? s[..64] : s;
    }

    /// <summary>One entry in the native protocol: KEY=value lines; a value with a newline as KEY, a 64-bit little-endian length, the bytes.</summary>
    public static void Field(IBufferWriter<byte> w, string key, ReadOnlySpan<char> value)
    {
        if (Encoding.UTF8.GetByteCount(value) > MaxValueBytes) value = value[..Math.Min(value.Length, MaxValueBytes / 3)];
        int keyLen = Encoding.UTF8.GetBytes(key, w.GetSpan(key.Length * 3));
        w.Advance(keyLen);
        int max = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (value.IndexOf('\n') < 0)
        {
            var span = w.GetSpan(max + 2);
            span[0] = (byte)'=';
            int n = Encoding.UTF8.GetBytes(value, span[1..]);
            span[n + 1] = (byte)'\n';
            w.Advance(n + 2);
        }
        else
        {
            var span = w.GetSpan(max + 10);
            span[0] = (byte)'\n';
            int n = Encoding.UTF8.GetBytes(value, span[9..]);
            BinaryPrimitives.WriteUInt64LittleEndian(span[1..], (ulong)n);
            span[n + 9] = (byte)'\n';
            w.Advance(n + 10);
        }
    }

    /// <summary>syslog priorities, as journald stores them.</summary>
    public static char Priority(LogLevel level) => level switch
    {
        LogLevel.Critical => '2',
        LogLevel.Error => '3',
        LogLevel.Warning => '4',
        LogLevel.Information => '6',
        _ => '7',
    };

    internal void Write<TState>(string category, LogLevel level, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var w = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        w.ResetWrittenCount();
        Field(w, "MESSAGE", formatter(state, exception));
        Span<char> p = [Priority(level)];
        Field(w, "PRIORITY", p);
        Field(w, "SYSLOG_IDENTIFIER", identifier);
        Field(w, "LOGGER", category);
        if (eventId.Id != 0)
        {
            Span<char> id = stackalloc char[11];
            eventId.Id.TryFormat(id, out int n, provider: System.Globalization.CultureInfo.InvariantCulture);
            Field(w, "EVENT_ID", id[..n]);
        }
        if (eventId.Name is { Length: > 0 } name) Field(w, "EVENT_NAME", name);
        if (state is IReadOnlyList<KeyValuePair<string, object?>> values)
            foreach (var (key, value) in values)
            {
                if (key == "{OriginalFormat}" || value is null) continue;
                Field(w, FieldName(key), value is IFormattable f ? f.ToString(null, System.Globalization.CultureInfo.InvariantCulture) : value.ToString());
            }
        if (exception is not null) Field(w, "EXCEPTION", exception.ToString());
        try { _socket.SendTo(w.WrittenSpan, SocketFlags.None, _target); }
        catch (SocketException) { } // journald away: nothing better to do with a log line
        if (w.Capacity > 256 * 1024) t_buffer = null;
    }

    private sealed class JournalLogger(JournalLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) provider.Write(category, logLevel, eventId, state, exception, formatter);
        }
    }
}
