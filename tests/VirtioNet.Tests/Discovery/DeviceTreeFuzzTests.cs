using VirtioNet.Core;
using VirtioNet.Discovery;
using Xunit;

namespace VirtioNet.Tests.Discovery;

/// <summary>
/// Corrupts the real QEMU blob in many seeded ways and checks that the parser, the node helpers and discovery either
/// succeed or fail with <see cref="VirtioErrorReason.MalformedDescription"/>: never another exception, never a hang.
/// </summary>
public class DeviceTreeFuzzTests
{
    private const int Iterations = 4000;

    // Values that steer a corrupted word towards the parser's decisions: tokens, small lengths, boundaries.
    private static readonly uint[] InterestingWords = [0, 1, 2, 3, 4, 9, 0x10, 0x11, 0x28, 0x7F, 0xFF, 0x1000, 0x107E, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFC, 0xFFFF_FFFF];

    [Fact(Timeout = 120_000)]
    public async Task CorruptedQemuTreesFailOnlyAsMalformedDescriptions()
    {
        byte[] original = DeviceTreeTestData.Load(DeviceTreeTestData.RiscvVirt);
        CancellationToken cancellation = TestContext.Current.CancellationToken;
        (int parsed, int refused) = await Task.Run(() => Run(original, seed: 0x5EED, cancellation), cancellation);

        // Both outcomes must occur, or the corruption is not reaching the interesting paths.
        Assert.True(parsed > Iterations / 20, $"only {parsed} of {Iterations} corrupted blobs parsed");
        Assert.True(refused > Iterations / 20, $"only {refused} of {Iterations} corrupted blobs were refused");
    }

    private static (int Parsed, int Refused) Run(byte[] original, int seed, CancellationToken cancellation)
    {
        var random = new Random(seed);
        int parsed = 0;
        int refused = 0;
        for (int iteration = 0; iteration < Iterations; iteration++)
        {
            cancellation.ThrowIfCancellationRequested();
            byte[] blob = (byte[])original.Clone();
            Corrupt(blob, random);
            string what = $"iteration {iteration} (seed 0x{seed:x})";

            FlattenedDeviceTree tree;
            try
            {
                tree = FlattenedDeviceTree.Parse(blob);
            }
            catch (VirtioException e) when (e.Reason == VirtioErrorReason.MalformedDescription)
            {
                refused++;
                continue;
            }
            catch (Exception e)
            {
                Assert.Fail($"{what}: Parse threw {e}");
                throw;
            }

            parsed++;
            Exercise(tree, what);
        }

        return (parsed, refused);
    }

    private static void Corrupt(byte[] blob, Random random)
    {
        int mutations = random.Next(1, 5);
        for (int i = 0; i < mutations; i++)
        {
            // A quarter of the mutations go to the header, where each field steers the whole parse.
            int limit = random.Next(4) == 0 ? FdtBuilder.HeaderSize : blob.Length;
            switch (random.Next(3))
            {
                case 0:
                    blob[random.Next(limit)] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    blob[random.Next(limit)] = (byte)random.Next(256);
                    break;
                default:
                    int word = random.Next(limit / 4) * 4;
                    FdtBuilder.SetField(blob, word, InterestingWords[random.Next(InterestingWords.Length)]);
                    break;
            }
        }
    }

    /// <summary>Calls every helper on every node of a tree that parsed; each may only fail as malformed.</summary>
    private static void Exercise(FlattenedDeviceTree tree, string what)
    {
        Tolerate(what, "VirtioMmioDiscovery.Find", () => VirtioMmioDiscovery.Find(tree));
        Tolerate(what, "PlatformInterruptController.Find", () => PlatformInterruptController.Find(tree));
        Tolerate(what, "FindNode", () => tree.FindNode("/soc/virtio_mmio@10008000"));
        Tolerate(what, "FindNode alias", () => tree.FindNode("serial0/x"));
        foreach (DeviceTreeNode node in tree.Nodes)
        {
            Assert.NotNull(node.Path);
            Tolerate(what, node.Path + " Compatible", () => node.Compatible);
            Tolerate(what, node.Path + " IsEnabled", () => node.IsEnabled);
            Tolerate(what, node.Path + " TryGetReg", () => node.TryGetReg(out _));
            Tolerate(what, node.Path + " TryTranslateAddress", () => node.TryTranslateAddress(0x1000_1000, out _));
            Tolerate(what, node.Path + " GetInterruptParent", () => node.GetInterruptParent());
            Tolerate(what, node.Path + " TryGetInterrupts", () => node.TryGetInterrupts(out _));
            foreach (DeviceTreeProperty property in node.Properties.Values)
            {
                Tolerate(what, property + " AsString", () => property.AsString());
                Tolerate(what, property + " AsStringList", () => property.AsStringList());
                Tolerate(what, property + " AsUInt32", () => property.AsUInt32());
                Tolerate(what, property + " AsUInt64", () => property.AsUInt64());
                Tolerate(what, property + " AsUInt32Array", () => property.AsUInt32Array());
            }
        }
    }

    private static void Tolerate(string what, string call, Func<object?> action)
    {
        try
        {
            action();
        }
        catch (VirtioException e) when (e.Reason == VirtioErrorReason.MalformedDescription)
        {
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {call} threw {e}");
        }
    }
}
