// Command peers does the hand-over retrospective's benchmark measures, with the tools users would
// pick instead, against the same control plane: client-go's leader election with a LeaseLock, and
// etcd's concurrency.Mutex. It prints one JSON line: {"samples": [gap in ms, ...]}, each gap the
// time from the holder starting to let go to the next holder having it.
//
//	peers leaderelection -kubeconfig K -namespace N -candidates 20 -handovers 20 -lease 15s -renew 10s -retry 2s
//	peers mutex -endpoints http://127.0.0.1:2379 -waiters 20 -handovers 50 [-warmup 20: hand-overs before those, printed first]
//	peers leasewatch -kubeconfig K -namespace N -writes 200
//
// leasewatch is the floor of any hand-over through a Lease: one writer replaces a Lease and a
// watch sees it; each sample is the time from the update call to the watch event, in ms.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// gaps collects hand-over gaps: let go at one time, taken at a later one.
type gaps struct {
	mu       sync.Mutex
	grants   int
	released time.Time
	samples  []float64
	want     int
	done     chan struct{}
}

func newGaps(want int) *gaps { return &gaps{want: want, done: make(chan struct{})} }

// letGo marks the start of a release; it returns the grants so far.
func (g *gaps) letGo() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.released = time.Now()
	return g.grants
}

// takenSince waits until there were more than `grants` grants (or the run ends).
func (g *gaps) takenSince(ctx context.Context, grants int) {
	for ctx.Err() == nil {
		g.mu.Lock()
		more := g.grants > grants
		g.mu.Unlock()
		if more {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// took records a grant; it reports false once enough hand-overs were seen.
func (g *gaps) took() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.grants++
	if len(g.samples) >= g.want {
		return false
	}
	if !g.released.IsZero() {
		g.samples = append(g.samples, float64(time.Since(g.released).Microseconds())/1000)
		g.released = time.Time{}
		if len(g.samples) == g.want {
			close(g.done)
		}
	}
	return true
}

func leaderElection(args []string) ([]float64, error) {
	fs := flag.NewFlagSet("leaderelection", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	namespace := fs.String("namespace", "default", "namespace of the Lease")
	candidates := fs.Int("candidates", 20, "contending electors")
	handovers := fs.Int("handovers", 20, "hand-overs to measure")
	lease := fs.Duration("lease", 15*time.Second, "LeaseDuration")
	renew := fs.Duration("renew", 10*time.Second, "RenewDeadline")
	retry := fs.Duration("retry", 2*time.Second, "RetryPeriod")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after")
	_ = fs.Parse(args)

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return nil, err
	}
	config.QPS, config.Burst = 1000, 1000
	client := kubernetes.NewForConfigOrDie(config)
	name := fmt.Sprintf("bench-le-%d", time.Now().UnixNano())
	defer func() {
		_ = client.CoordinationV1().Leases(*namespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	}()
	g := newGaps(*handovers)
	ctx, stop := context.WithTimeout(context.Background(), *timeout)
	defer stop()

	var run func(id int)
	run = func(id int) {
		for ctx.Err() == nil {
			lock := &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: *namespace},
				Client:     client.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: fmt.Sprintf("candidate-%d", id)},
			}
			term, cancel := context.WithCancel(ctx)
			grants := -1
			leaderelection.RunOrDie(term, leaderelection.LeaderElectionConfig{
				Lock:            lock,
				LeaseDuration:   *lease,
				RenewDeadline:   *renew,
				RetryPeriod:     *retry,
				ReleaseOnCancel: true,
				Callbacks: leaderelection.LeaderCallbacks{
					OnStartedLeading: func(context.Context) {
						if g.took() {
							grants = g.letGo() // hand over at once: cancelling releases the Lease
						}
						cancel()
					},
					OnStoppedLeading: func() {},
				},
			})
			cancel()
			// Without a line, the one that let go would win again at once: it rejoins only
			// once another candidate took over, so every gap is a hand-over to someone else.
			if grants >= 0 {
				g.takenSince(ctx, grants)
			}
		}
	}
	for i := 0; i < *candidates; i++ {
		go run(i)
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("only %d hand-overs before the timeout", len(g.samples))
	}
	stop()
	return g.samples, nil
}

func mutex(args []string) ([]float64, error) {
	fs := flag.NewFlagSet("mutex", flag.ExitOnError)
	endpoints := fs.String("endpoints", "http://127.0.0.1:2379", "etcd endpoints")
	waiters := fs.Int("waiters", 20, "contending sessions")
	handovers := fs.Int("handovers", 50, "hand-overs to measure")
	warmup := fs.Int("warmup", 0, "hand-overs before those, printed first")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	_ = fs.Parse(args)

	client, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{*endpoints},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	key := fmt.Sprintf("/bench-mutex-%d", time.Now().UnixNano())
	g := newGaps(*warmup + *handovers)
	ctx, stop := context.WithTimeout(context.Background(), *timeout)
	defer stop()
	for i := 0; i < *waiters; i++ {
		session, err := concurrency.NewSession(client)
		if err != nil {
			return nil, err
		}
		defer session.Close()
		m := concurrency.NewMutex(session, key)
		go func() {
			for ctx.Err() == nil {
				if m.Lock(ctx) != nil {
					return
				}
				more := g.took()
				g.letGo()
				_ = m.Unlock(ctx)
				if !more {
					return
				}
			}
		}()
	}
	select {
	case <-g.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("only %d hand-overs before the timeout", len(g.samples))
	}
	return g.samples, nil
}

func leaseWatch(args []string) ([]float64, error) {
	fs := flag.NewFlagSet("leasewatch", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	namespace := fs.String("namespace", "default", "namespace of the Lease")
	writes := fs.Int("writes", 200, "writes to measure")
	_ = fs.Parse(args)

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return nil, err
	}
	config.QPS, config.Burst = 1000, 1000
	// What Kubernetes' own controllers speak: the cheapest way through kube-apiserver.
	config.ContentType = "application/vnd.kubernetes.protobuf"
	leases := kubernetes.NewForConfigOrDie(config).CoordinationV1().Leases(*namespace)
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	name := fmt.Sprintf("bench-lw-%d", time.Now().UnixNano())
	lease, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = leases.Delete(context.Background(), name, metav1.DeleteOptions{}) }()
	w, err := leases.Watch(ctx, metav1.ListOptions{
		FieldSelector:   "metadata.name=" + name,
		ResourceVersion: lease.ResourceVersion,
	})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	// Each event timed as it arrives, which may be before the update's own answer.
	type sighting struct {
		version string
		at      time.Time
	}
	seen := make(chan sighting, 16)
	go func() {
		for event := range w.ResultChan() {
			if got, ok := event.Object.(*coordinationv1.Lease); ok && event.Type == watch.Modified {
				seen <- sighting{got.ResourceVersion, time.Now()}
			}
		}
		close(seen)
	}()
	samples := make([]float64, 0, *writes)
	for i := 0; i < *writes; i++ {
		holder := fmt.Sprintf("holder-%d", i%2)
		lease.Spec.HolderIdentity = &holder
		started := time.Now()
		if lease, err = leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
		for {
			select {
			case s, open := <-seen:
				if !open {
					return nil, fmt.Errorf("the watch ended after %d writes", i)
				}
				if s.version != lease.ResourceVersion {
					continue
				}
				samples = append(samples, float64(s.at.Sub(started).Microseconds())/1000)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			break
		}
	}
	return samples, nil
}

func main() {
	klog.SetLogger(logr.Discard())
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peers leaderelection|mutex|leasewatch [flags]")
		os.Exit(2)
	}
	var samples []float64
	var err error
	switch os.Args[1] {
	case "leaderelection":
		samples, err = leaderElection(os.Args[2:])
	case "mutex":
		samples, err = mutex(os.Args[2:])
	case "leasewatch":
		samples, err = leaseWatch(os.Args[2:])
	default:
		err = fmt.Errorf("unknown peer %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"samples": samples})
}
