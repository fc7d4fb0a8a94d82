package imagegen

// Demo images.
const (
	DemoHello = "demo/hello" // tags "1.0" and "2.0", Docker media types
	DemoTools = "demo/tools" // tag "latest", OCI media types
)

func demoBase() layerSpec {
	return layerSpec{comment: "demo base", entries: []ent{
		dir("bin", 0o755),
		file("bin/hello", "#!/bin/sh\necho \"$(cat /app/message.txt)\"\n", 0o755),
		hardlink("bin/greet", "bin/hello"),
		symlink("bin/hi", "hello"),
		file("bin/cat-os", "#!/bin/sh\ncat /etc/os-release\n", 0o755),
		dir("etc", 0o755),
		file("etc/os-release", "NAME=\"flatbed demo\"\nID=flatbed-demo\nVERSION_ID=1\nPRETTY_NAME=\"flatbed demo 1\"\n", 0o644),
		file("etc/motd", "Welcome to the flatbed demo image.\n", 0o644),
		dir("usr", 0o755),
		dir("usr/share", 0o755),
		dir("usr/share/doc", 0o755),
		file("usr/share/doc/README", "Text files only: these images are for looking at, not running.\n", 0o644),
		dir("tmp", 0o1777),
	}}
}

func demoApp(version string) layerSpec {
	return layerSpec{comment: "app " + version, entries: []ent{
		dir("app", 0o755),
		file("app/message.txt", "Hello from flatbed demo "+version+"!\n", 0o644),
		file("app/VERSION", version+"\n", 0o644),
	}}
}

// Demo returns small friendly images: demo/hello:1.0, demo/hello:2.0 (same
// base layer as 1.0, one more layer) and demo/tools:latest (same base layer).
func Demo() []Named {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello"}
	specs := []imageSpec{
		{name: DemoHello, tag: "1.0", docker: true, env: env, cmd: []string{"/bin/hello"},
			layers: []layerSpec{demoBase(), demoApp("1.0")}},
		{name: DemoHello, tag: "2.0", docker: true, env: env, cmd: []string{"/bin/hello"},
			layers: []layerSpec{demoBase(), demoApp("2.0"), {comment: "what's new", entries: []ent{
				dir("app", 0o755),
				file("app/CHANGES", "2.0: a new message\n", 0o644),
			}}}},
		{name: DemoTools, tag: "latest", env: env, cmd: []string{"/usr/local/bin/tool-a"},
			layers: []layerSpec{demoBase(), {comment: "tools", entries: []ent{
				dir("usr/local", 0o755),
				dir("usr/local/bin", 0o755),
				file("usr/local/bin/tool-a", "#!/bin/sh\necho tool a\n", 0o755),
				file("usr/local/bin/tool-b", "#!/bin/sh\necho tool b\n", 0o755),
				hardlink("usr/local/bin/tool-b-again", "usr/local/bin/tool-b"),
				symlink("usr/local/bin/t", "tool-a"),
			}}}},
	}
	return mustBuild(specs, nil)
}
