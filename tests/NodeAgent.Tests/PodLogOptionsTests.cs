using NodeAgent.Api.Core;
using Xunit;

namespace NodeAgent.Tests;

/// <summary>The pods/log and /containerLogs query, as both the control plane and the agent read it.</summary>
public sealed class PodLogOptionsTests
{
    private static PodLogOptions Parse(string query)
    {
        var q = query.Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? Uri.UnescapeDataString(p[1]) : "");
        return PodLogOptions.FromQuery(name => q.GetValueOrDefault(name));
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("follow=true", true)]
    [InlineData("follow=1", true)]
    [InlineData("follow=TRUE", true)]
    [InlineData("follow=yes", true)]
    [InlineData("follow", true)]
    [InlineData("follow=false", false)]
    [InlineData("follow=False", false)]
    [InlineData("follow=0", false)]
    public void BooleansAreFalseOnlyWhenAbsentZeroOrFalse(string query, bool expected) => Assert.Equal(expected, Parse(query).Follow);

    [Fact]
    public void NumbersAndTimesParseOrNameTheParameter()
    {
        var o = Parse("tailLines=10&limitBytes=2048&sinceTime=2026-12-05T10:00:00.5Z&container=app&timestamps=true");
        Assert.Equal(10, o.TailLines);
        Assert.Equal(2048, o.LimitBytes);
        Assert.Equal(new DateTimeOffset(2026, 12, 5, 10, 0, 0, 500, TimeSpan.Zero), o.SinceTime);
        Assert.Equal("app", o.Container);
        Assert.Null(Parse("tailLines=").TailLines);
        Assert.Equal(new DateTimeOffset(2026, 12, 5, 9, 0, 0, TimeSpan.Zero), Parse("sinceTime=2026-12-05T10:00:00%2B01:00").SinceTime);

        Assert.Equal("tailLines", Assert.Throws<QueryParameterException>(() => Parse("tailLines=abc")).Name);
        Assert.Equal("limitBytes", Assert.Throws<QueryParameterException>(() => Parse("limitBytes=1.5")).Name);
        Assert.Equal("sinceSeconds", Assert.Throws<QueryParameterException>(() => Parse("sinceSeconds=99999999999999999999")).Name);
        var e = Assert.Throws<QueryParameterException>(() => Parse("sinceTime=2026-12-05"));
        Assert.Equal("invalid value \"2026-12-05\" for query parameter sinceTime: must be an RFC 3339 time", e.Message);
    }

    [Theory]
    [InlineData("tailLines=0&limitBytes=1&sinceSeconds=1", "")]
    [InlineData("tailLines=-1", "tailLines: Invalid value: -1: must be greater than or equal to 0")]
    [InlineData("limitBytes=0", "limitBytes: Invalid value: 0: must be greater than 0")]
    [InlineData("sinceSeconds=-3", "sinceSeconds: Invalid value: -3: must be greater than 0")]
    [InlineData("sinceSeconds=-3&sinceTime=2026-12-05T10:00:00Z", ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")]
    public void ValidationIsUpstreams(string query, string expected) =>
        Assert.Equal(expected, string.Join("; ", Parse(query).Validate()));

    [Fact]
    public void TheKubeletGetsTheOptionsNormalized()
    {
        Assert.Equal("", Parse("follow=false&container=c").ToQuery());
        Assert.Equal("?follow=true&timestamps=true&tailLines=5&sinceTime=2026-12-05T09%3A00%3A00Z",
            Parse("follow=1&timestamps=yes&tailLines=5&sinceTime=2026-12-05T10:00:00%2B01:00").ToQuery());
    }
}
