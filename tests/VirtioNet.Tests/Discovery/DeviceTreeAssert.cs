using VirtioNet.Core;
using VirtioNet.Discovery;
using Xunit;

namespace VirtioNet.Tests.Discovery;

internal static class DeviceTreeAssert
{
    /// <summary>Asserts that <paramref name="action"/> fails as a malformed description, and nothing else.</summary>
    public static VirtioException Malformed(Action action)
    {
        VirtioException e = Assert.Throws<VirtioException>(action);
        Assert.Equal(VirtioErrorReason.MalformedDescription, e.Reason);
        return e;
    }

    /// <summary>Asserts that parsing <paramref name="blob"/> fails as a malformed description with a message containing <paramref name="expected"/>.</summary>
    public static VirtioException ParseFails(byte[] blob, string expected)
    {
        VirtioException e = Malformed(() => FlattenedDeviceTree.Parse(blob));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        return e;
    }
}
