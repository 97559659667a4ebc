package gormcache_test

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

var models = []any{&Author{}, &Post{}, &Comment{}, &Language{}, &Pair{}, &Counter{}, &CamelItem{}}

// Meta is a custom Scanner/Valuer stored as JSON text.
type Meta struct {
	Tags  []string `json:"tags"`
	Score int      `json:"score"`
}

func (m Meta) Value() (driver.Value, error) {
	b, err := json.Marshal(m)
	return string(b), err
}

func (m *Meta) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*m = Meta{}
		return nil
	case string:
		return json.Unmarshal([]byte(v), m)
	case []byte:
		return json.Unmarshal(v, m)
	}
	return errors.New("Meta: unsupported source")
}

// Audit is embedded in Post.
type Audit struct {
	CreatedBy string
	Revision  int
}

type Author struct {
	ID        uint
	Name      string
	Posts     []Post
	Languages []Language `gorm:"many2many:author_languages"`
}

type Language struct {
	ID   uint
	Name string
}

type Post struct {
	ID          uint
	AuthorID    uint
	Title       string
	Body        *string
	Views       int
	Score       float64
	Published   bool
	Data        []byte
	Meta        Meta `gorm:"type:text"`
	PublishedAt *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   gorm.DeletedAt `gorm:"index"`
	Secret      string         `json:"-"`
	Audit       `gorm:"embedded;embeddedPrefix:audit_"`
	Comments    []Comment
	Author      *Author
	Loaded      int `gorm:"-"` // set by AfterFind
}

var afterFinds atomic.Int64

func (p *Post) AfterFind(*gorm.DB) error {
	afterFinds.Add(1)
	p.Loaded++
	return nil
}

type Comment struct {
	ID     uint
	PostID uint
	Body   string
}

// Pair has a composite primary key.
type Pair struct {
	A int    `gorm:"primaryKey;autoIncrement:false"`
	B string `gorm:"primaryKey"`
	V int
}

type Counter struct {
	ID uint
	N  int
}

// CamelItem lives in a mixed-case table, which PostgreSQL keeps quoted.
type CamelItem struct {
	ID   uint
	Name string
}

func (CamelItem) TableName() string { return "CamelItems" }
