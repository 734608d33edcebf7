package testenv

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
)

// containerExpiry is how long Docker keeps a fallback container: a test binary
// that dies without cleaning up leaves nothing behind for long.
const containerExpiry = 15 * time.Minute

var dockerPool = sync.OnceValues(func() (*dockertest.Pool, error) {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	if err := pool.Client.Ping(); err != nil {
		return nil, fmt.Errorf("no Docker engine: %w", err)
	}
	pool.MaxWait = 2 * time.Minute
	return pool, nil
})

// startContainer runs image:tag with env, waits until ready(hostPort) succeeds
// for the given container port, and returns that host port.
func startContainer(repo, tag string, env []string, port string, ready func(hostPort string) error) (string, error) {
	pool, err := dockerPool()
	if err != nil {
		return "", err
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{Repository: repo, Tag: tag, Env: env},
		func(hc *docker.HostConfig) {
			hc.AutoRemove = true
			hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
		})
	if err != nil {
		return "", fmt.Errorf("start %s:%s: %w", repo, tag, err)
	}
	if err := res.Expire(uint(containerExpiry.Seconds())); err != nil {
		return "", errors.Join(fmt.Errorf("expire %s: %w", repo, err), pool.Purge(res))
	}
	hostPort := res.GetHostPort(port)
	if err := pool.Retry(func() error { return ready(hostPort) }); err != nil {
		return "", errors.Join(fmt.Errorf("%s:%s never became ready: %w", repo, tag, err), pool.Purge(res))
	}
	return hostPort, nil
}
