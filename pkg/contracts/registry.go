package contracts

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// Registry maps event types to the Go types of their data, so that a
// consumer can decode any registered envelope into a Go value without
// knowing its type in advance. The zero value is an empty registry ready to
// use. A Registry is safe for concurrent use, registration included; it must
// not be copied after first use.
type Registry struct {
	mu    sync.RWMutex
	types map[string]registration
}

type registration struct {
	goType reflect.Type
	decode func(Envelope) (any, error)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register maps eventType to the Go type of prototype (for instance
// UserCreatedData{}); [Registry.Decode] then returns values of that type.
// It returns a [*ValidationError] if eventType does not match
// [EventTypePattern], and an error if prototype is nil or eventType is
// already registered.
func (r *Registry) Register(eventType string, prototype any) error {
	t := reflect.TypeOf(prototype)
	if t == nil {
		return fmt.Errorf("register %q: nil prototype", eventType)
	}
	return r.add(eventType, registration{goType: t, decode: func(env Envelope) (any, error) {
		ptr := reflect.New(t)
		if err := decodeData(env.Data, ptr.Interface()); err != nil {
			return nil, err
		}
		return ptr.Elem().Interface(), nil
	}})
}

// RegisterEvent registers the typed event ev in r, so that [Registry.Decode]
// returns its data as a T. It returns the errors of [Registry.Register].
func RegisterEvent[T any](r *Registry, ev Event[T]) error {
	return r.add(ev.name, registration{goType: reflect.TypeFor[T](), decode: func(env Envelope) (any, error) {
		v, err := ev.Decode(env)
		if err != nil {
			return nil, err
		}
		return v, nil
	}})
}

func (r *Registry) add(eventType string, reg registration) error {
	if err := checkEventType(eventType); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, dup := r.types[eventType]; dup {
		return fmt.Errorf("register %q: already registered as %v", eventType, prev.goType)
	}
	if r.types == nil {
		r.types = make(map[string]registration)
	}
	r.types[eventType] = reg
	return nil
}

// Lookup returns the Go type registered for eventType, and whether there is one.
func (r *Registry) Lookup(eventType string) (reflect.Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.types[eventType]
	return reg.goType, ok
}

// Types returns the registered event types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	types := make([]string, 0, len(r.types))
	for t := range r.types {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// Decode returns env's data as a value of the Go type registered for
// env.EventType (a T, not a *T, for a type registered as T). It returns an
// error wrapping [ErrUnknownType] (unknown event type "x.y.z") when the type
// is not registered, and a [*ValidationError] naming the field when data
// does not fit the type.
func (r *Registry) Decode(env Envelope) (any, error) {
	r.mu.RLock()
	reg, ok := r.types[env.EventType]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownType, quote(env.EventType))
	}
	return reg.decode(env)
}
