-- A little demo data for `julia dev`: doctors the local chat page can play.
-- Idempotent; never loaded outside APP_ENV=dev.
INSERT INTO public.clientes (telefone, nome) VALUES
    ('5511999990001', 'Ana Souza'),
    ('5511999990002', 'Bruno Lima'),
    ('5521999990003', 'Carla Mendes')
ON CONFLICT (telefone) DO NOTHING;
