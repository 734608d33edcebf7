package service

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MinPoolConns is the least connections NewPool sizes a pool for.
const MinPoolConns = 4

// NewPool opens a lazily connecting PostgreSQL pool for url. Unless url sets
// pool_max_conns, the pool holds at most max(MinPoolConns, GOMAXPROCS)
// connections: pgx's own default counts the node's CPUs, so one replica in
// a 2-CPU container on a 64-CPU node would open 64, and a few replicas
// would use up max_connections. GOMAXPROCS follows the container's CPU
// limit.
func NewPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(max(MinPoolConns, runtime.GOMAXPROCS(0)))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	return pool, nil
}
