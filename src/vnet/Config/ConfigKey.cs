namespace VirtioNet.Cli.Config;

/// <summary>One key of <c>virtio-net.toml</c>: its section and name, its default and meaning (as docs/virtio-net.toml gives them), and how its value lands in a <see cref="VnetConfig"/>.</summary>
/// <param name="Section">The table it belongs in: device, performance, debug or platform.</param>
/// <param name="Name">The key.</param>
/// <param name="Default">Its default, as TOML.</param>
/// <param name="Apply">Reads the value (throwing <see cref="ConfigValueException"/> when it is wrong) and sets it.</param>
internal sealed record ConfigKey(string Section, string Name, string Default, Action<ConfigValue, VnetConfig> Apply);
