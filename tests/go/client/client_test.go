// Tests of pycontainerd through containerd's own Go client library, the one
// nerdctl, BuildKit and dockerd are built on. The Python test
// tests/e2e/test_go_client.py builds this package with `go test -c` and runs
// it against a daemon it started, passing where to find it in the environment:
//
//	PCD_ADDRESS      the daemon's socket
//	PCD_IMAGE        an image on the test registry (plain HTTP, loopback)
//	PCD_SHIM_CGROUP  a cgroup that exists (for TestShimCgroup), as the runc
//	                 options' ShimCgroup names it
//	PCD_CGROUP_PROCS the cgroup.procs files of that cgroup, ":"-separated
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
)

const (
	defaultSnapshotterLabel = "containerd.io/defaults/snapshotter"
	remappedRoot            = 100000
)

func env(t *testing.T, name string) string {
	t.Helper()
	value := os.Getenv(name)
	if value == "" {
		t.Fatalf("%s is not set: run this through tests/e2e/test_go_client.py", name)
	}
	return value
}

// newClient connects to the daemon, in a namespace of the test's own, which it
// labels with the default snapshotter before anything else is in it (the
// first call of many Go programs).
func newClient(t *testing.T) (*containerd.Client, context.Context) {
	t.Helper()
	namespace := fmt.Sprintf("go-%d-%s", os.Getpid(), strings.ToLower(t.Name()))
	client, err := containerd.New(env(t, "PCD_ADDRESS"), containerd.WithDefaultNamespace(namespace))
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), 2*time.Minute)
	t.Cleanup(cancel)
	if err := client.NamespaceService().SetLabel(ctx, namespace, defaultSnapshotterLabel, "overlayfs"); err != nil {
		t.Fatalf("setting %s on the new namespace %s: %v", defaultSnapshotterLabel, namespace, err)
	}
	return client, ctx
}

func pull(t *testing.T, client *containerd.Client, ctx context.Context) containerd.Image {
	t.Helper()
	resolver := docker.NewResolver(docker.ResolverOptions{PlainHTTP: true})
	image, err := client.Pull(ctx, env(t, "PCD_IMAGE"), containerd.WithPullUnpack, containerd.WithResolver(resolver))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	return image
}

// run runs a task to its end and returns what it printed.
func run(t *testing.T, ctx context.Context, container containerd.Container, opts ...containerd.NewTaskOpts) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	task, err := container.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)), opts...)
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	defer task.Delete(ctx, containerd.WithProcessKill)
	exited, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	status := <-exited
	code, _, err := status.Result()
	if err != nil || code != 0 {
		t.Fatalf("task ended with %d (%v); stderr: %s", code, err, stderr.String())
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("delete task: %v", err)
	}
	return stdout.String()
}

func removeContainer(ctx context.Context, container containerd.Container) {
	container.Delete(ctx, containerd.WithSnapshotCleanup)
}

func TestDefaultSnapshotterLabelOnANewNamespace(t *testing.T) {
	client, ctx := newClient(t)
	namespace, _ := namespaces.Namespace(ctx)
	labels, err := client.NamespaceService().Labels(ctx, namespace)
	if err != nil {
		t.Fatalf("labels: %v", err)
	}
	if labels[defaultSnapshotterLabel] != "overlayfs" {
		t.Fatalf("labels of %s: %v", namespace, labels)
	}
}

// TestPullAndRunInAUserNamespace is a new user's first program: a client, the
// default snapshotter on a new namespace, a pull, a container in a user
// namespace, and content written again.
func TestPullAndRunInAUserNamespace(t *testing.T) {
	client, ctx := newClient(t)
	image := pull(t, client, ctx)
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: remappedRoot, Size: 65536}}
	container, err := client.NewContainer(ctx, "userns",
		containerd.WithImage(image),
		containerd.WithRemappedSnapshot("userns-rootfs", image, remappedRoot, remappedRoot),
		containerd.WithNewSpec(
			oci.WithImageConfig(image),
			oci.WithUserNamespace(mapping, mapping),
			oci.WithProcessArgs("sh", "-c", "id -u; id -g; cat /proc/self/uid_map; touch /written"),
		),
	)
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	defer removeContainer(ctx, container)
	out := strings.Fields(run(t, ctx, container))
	want := []string{"0", "0", "0", fmt.Sprint(remappedRoot), "65536"}
	if strings.Join(out, " ") != strings.Join(want, " ") {
		t.Fatalf("inside the user namespace: %q, want %q", out, want)
	}
	commitExistingContentTwice(t, client, ctx)
}

func TestCommitOfExistingContentTwice(t *testing.T) {
	client, ctx := newClient(t)
	commitExistingContentTwice(t, client, ctx)
}

// commitExistingContentTwice commits content the store has, twice under one
// ref: each time AlreadyExists, and the next writer starts afresh at 0. The
// content is held by a lease, as a client must hold content it has not yet
// referenced: without one, garbage collection may take it between the commits
// (as containerd's would), and the second commit would rightly succeed.
func commitExistingContentTwice(t *testing.T, client *containerd.Client, ctx context.Context) {
	t.Helper()
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	defer done(ctx)
	store := client.ContentStore()
	data := make([]byte, 256)
	rand.Read(data)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(ctx, store, "first", bytes.NewReader(data), desc); err != nil {
		t.Fatalf("first write: %v", err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		writer, err := store.Writer(ctx, content.WithRef("again"))
		if err != nil {
			t.Fatalf("writer %d: %v", attempt, err)
		}
		if status, err := writer.Status(); err != nil || status.Offset != 0 {
			t.Fatalf("writer %d starts at offset %d (%v), want 0", attempt, status.Offset, err)
		}
		if _, err := writer.Write(data); err != nil {
			t.Fatalf("write %d: %v", attempt, err)
		}
		err = writer.Commit(ctx, desc.Size, desc.Digest)
		writer.Close()
		if !errdefs.IsAlreadyExists(err) {
			t.Fatalf("commit %d of existing content: %v, want already exists", attempt, err)
		}
	}
	if err := content.WriteBlob(ctx, store, "first", bytes.NewReader(data), desc); err != nil {
		t.Fatalf("WriteBlob of existing content: %v", err)
	}
}

func TestMissingRuntimeBinaryIsNamed(t *testing.T) {
	client, ctx := newClient(t)
	image := pull(t, client, ctx)
	container, err := client.NewContainer(ctx, "no-runc",
		containerd.WithImage(image),
		containerd.WithNewSnapshot("no-runc-rootfs", image),
		containerd.WithRuntime("io.containerd.runc.v2", &options.Options{BinaryName: "no-runc"}),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("true")),
	)
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	defer removeContainer(ctx, container)
	_, err = container.NewTask(ctx, cio.NullIO)
	want := `"no-runc": executable file not found in $PATH`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("task with a missing runtime binary: %v, want an error containing %s", err, want)
	}
}

// TestShimCgroup starts two tasks, one asking for the shim cgroup: only its
// shim may be in that cgroup (a shim of its own, not one shared with others).
func TestShimCgroup(t *testing.T) {
	client, ctx := newClient(t)
	image := pull(t, client, ctx)
	shimCgroup := env(t, "PCD_SHIM_CGROUP")
	procs := strings.Split(env(t, "PCD_CGROUP_PROCS"), ":")
	started := map[string]uint32{}
	for _, id := range []string{"plain", "placed"} {
		container, err := client.NewContainer(ctx, id,
			containerd.WithImage(image),
			containerd.WithNewSnapshot(id+"-rootfs", image),
			containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "60")),
		)
		if err != nil {
			t.Fatalf("new container %s: %v", id, err)
		}
		defer removeContainer(ctx, container)
		var opts []containerd.NewTaskOpts
		if id == "placed" {
			opts = append(opts, containerd.WithShimCgroup(shimCgroup))
		}
		task, err := container.NewTask(ctx, cio.NullIO, opts...)
		if err != nil {
			t.Fatalf("new task %s: %v", id, err)
		}
		defer task.Delete(ctx, containerd.WithProcessKill)
		started[id] = task.Pid()
	}
	for _, file := range procs {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		pids := strings.Fields(string(text))
		if len(pids) != 1 {
			t.Fatalf("%s holds %v, want the one shim of task placed", file, pids)
		}
		if ppid := parentOf(t, started["placed"]); fmt.Sprint(ppid) != pids[0] {
			t.Fatalf("%s holds %v, but the shim of task placed is %d", file, pids, ppid)
		}
		if ppid := parentOf(t, started["plain"]); fmt.Sprint(ppid) == pids[0] {
			t.Fatalf("task plain shares the shim in %s", file)
		}
	}
}

// parentOf is the parent of a process: for a task's init, its shim.
func parentOf(t *testing.T, pid uint32) int {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading stat of %d: %v", pid, err)
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	var ppid int
	fmt.Sscan(fields[1], &ppid)
	return ppid
}
