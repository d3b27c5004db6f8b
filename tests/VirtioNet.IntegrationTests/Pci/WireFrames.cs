namespace VirtioNet.IntegrationTests.Pci;

/// <summary>Frames for the wire tests: broadcast, so QEMU's receive filter passes them, with a random body.</summary>
internal static class WireFrames
{
    public static byte[] Make(int length, int seed)
    {
        byte[] frame = new byte[length];
        new Random(seed).NextBytes(frame);
        frame.AsSpan(0, 6).Fill(0xff);
        frame[6] = 0x02;                               // a locally administered, unicast source
        frame[12] = 0x88;                              // EtherType 0x88b5, IEEE local experimental
        frame[13] = 0xb5;
        return frame;
    }
}
